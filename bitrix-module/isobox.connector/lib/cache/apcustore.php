<?php
namespace Isobox\Connector\Cache;

/**
 * APCu: shared memory of this server's PHP workers. The fastest shared
 * place (no I/O, microseconds), and it expires entries itself.
 */
final class ApcuStore implements Store
{
	private const PREFIX = 'isobox.connector:';

	public static function available(): bool
	{
		return function_exists('apcu_enabled') && apcu_enabled();
	}

	public function get(string $key): ?array
	{
		$value = apcu_fetch(self::PREFIX . $key, $found);

		return $found && is_array($value) ? $value : null;
	}

	public function set(string $key, array $value, int $ttl): void
	{
		if ($ttl > 0)
		{
			apcu_store(self::PREFIX . $key, $value, $ttl);
		}
	}

	public function delete(string $key): void
	{
		apcu_delete(self::PREFIX . $key);
	}
}
