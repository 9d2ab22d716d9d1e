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

	public static function available(): bool
	{
		return class_exists(Application::class) && method_exists(Application::class, 'getManagedCache');
	}

	public function get(string $key): ?array
	{
		$cache = Application::getInstance()->getManagedCache();
		// A lifetime of 0 would mean "forever" to some cache engines, so a
		// read never asks for less than a second; set() stores nothing for 0.
		if (!$cache->read(1, $key, self::TABLE))
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
