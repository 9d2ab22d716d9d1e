<?php
namespace Isobox\Connector;

use Isobox\Connector\Cache\ApcuStore;
use Isobox\Connector\Cache\ManagedStore;
use Isobox\Connector\Cache\MemoryStore;
use Isobox\Connector\Cache\ScopedStore;
use Isobox\Connector\Cache\Store;

/**
 * Builds the module's services once per hit and hands them out.
 *
 * Bitrix calls the module through static handlers (OnRestCheckAuth,
 * onApplicationManagerInitialize, onEventManagerInitialize, agents), so the
 * wiring lives here instead of in a constructor. reset() drops everything,
 * which the settings page does after saving and tests do between cases.
 */
final class Module
{
	public const ID = 'isobox.connector';

	private static ?Config $config = null;
	private static ?Client $client = null;
	/** The shared store (APCu, managed cache or memory) before scoping. */
	private static ?Store $cache = null;
	private static ?Store $scoped = null;
	private static ?Spool $spool = null;
	private static ?Relay $relay = null;
	/** @var callable|null */
	private static $clock = null;

	public static function config(): Config
	{
		return self::$config ??= Config::load();
	}

	public static function client(): Client
	{
		return self::$client ??= new Client(self::config());
	}

	/**
	 * The answer cache, the fastest one this PHP has:
	 * APCu (shared by all workers of this server, in memory, TTL per entry),
	 * else the portal's managed cache (shared by all workers and, with
	 * memcache/redis, by all servers; a file per entry with the default
	 * file cache), else an array that lives for this hit only (still saves
	 * the repeated checks of one batch call). Each portal gets its own part
	 * of it (ScopedStore): several portals may share one PHP.
	 */
	public static function cache(): Store
	{
		if (self::$scoped === null)
		{
			$c = self::config();
			self::$scoped = new ScopedStore(self::store(), $c->clientId . "\n" . $c->authUrl . "\n" . $c->relayUrl);
		}

		return self::$scoped;
	}

	private static function store(): Store
	{
		if (self::$cache === null)
		{
			if (ApcuStore::available())
			{
				self::$cache = new ApcuStore();
			}
			elseif (ManagedStore::available())
			{
				self::$cache = new ManagedStore();
			}
			else
			{
				self::$cache = new MemoryStore([self::class, 'now']);
			}
		}

		return self::$cache;
	}

	public static function spool(): Spool
	{
		return self::$spool ??= new Spool(\Bitrix\Main\Application::getConnection(), [self::class, 'now']);
	}

	public static function relay(): Relay
	{
		return self::$relay ??= new Relay(self::config(), self::client(), self::spool(), self::cache());
	}

	/** Unix time; tests move it with setClock(). */
	public static function now(): int
	{
		return self::$clock !== null ? (int)(self::$clock)() : time();
	}

	/**
	 * Replaces parts of the wiring (tests, or an integrator who wants a
	 * different cache). Null keeps the current part.
	 */
	public static function override(?Store $cache = null, ?callable $clock = null): void
	{
		if ($cache !== null)
		{
			self::$cache = $cache;
			self::$scoped = null;
			self::$relay = null;
		}
		if ($clock !== null)
		{
			self::$clock = $clock;
		}
	}

	/** Forgets everything built so far; options are read again on next use. */
	public static function reset(): void
	{
		self::$config = null;
		self::$client = null;
		self::$cache = null;
		self::$scoped = null;
		self::$spool = null;
		self::$relay = null;
		self::$clock = null;
	}
}
