<?php
namespace Isobox\Connector\Cache;

use Bitrix\Main\Application;

/**
 * The portal's managed cache (files by default; memcache or redis when the
 * portal is configured so), under its own table id and with OUR lifetime on
 * every read, so an entry is never trusted longer than the module's cache
 * time — unlike the rest module's StorageCache, which keeps an hour.
 */
final class ManagedStore implements Store
{
	private const TABLE = 'isobox_connector';
	private const READ_CEILING = 86400;

	public static function available(): bool
	{
		return class_exists(Application::class) && method_exists(Application::class, 'getManagedCache');
	}

	public function get(string $key): ?array
	{
		$cache = Application::getInstance()->getManagedCache();
		// The file engine judges freshness by the lifetime given to read()
		// (creation time + read TTL), other engines by the one given at
		// write. Reading with a ceiling and checking our own "until" gives
		// the entry's real lifetime on every engine.
		if (!$cache->read(self::READ_CEILING, $key, self::TABLE))
		{
			return null;
		}
		$value = $cache->get($key);
		if (!is_array($value) || !isset($value['until'], $value['value']) || $value['until'] < time())
		{
			return null;
		}

		return $value['value'];
	}

	public function set(string $key, array $value, int $ttl): void
	{
		if ($ttl <= 0)
		{
			return;
		}
		$cache = Application::getInstance()->getManagedCache();
		$cache->clean($key, self::TABLE);
		$cache->read($ttl, $key, self::TABLE);
		$cache->set($key, ['until' => time() + $ttl, 'value' => $value]);
	}

	public function delete(string $key): void
	{
		Application::getInstance()->getManagedCache()->clean($key, self::TABLE);
	}
}
