<?php
namespace Isobox\Connector\Cache;

/**
 * An array that lives as long as this PHP process: for one hit under
 * PHP-FPM, for the whole run in tests and agents run from cron. Used when
 * neither APCu nor the managed cache exists, and by tests, whose clock it
 * follows.
 */
final class MemoryStore implements Store
{
	/** @var array<string, array{0:int, 1:array}> */
	private array $entries = [];
	/** @var callable */
	private $now;

	public function __construct(?callable $now = null)
	{
		$this->now = $now ?? 'time';
	}

	public function get(string $key): ?array
	{
		if (!isset($this->entries[$key]))
		{
			return null;
		}
		[$until, $value] = $this->entries[$key];
		if ($until <= ($this->now)())
		{
			unset($this->entries[$key]);

			return null;
		}

		return $value;
	}

	public function set(string $key, array $value, int $ttl): void
	{
		if ($ttl > 0)
		{
			$this->entries[$key] = [($this->now)() + $ttl, $value];
		}
	}

	public function delete(string $key): void
	{
		unset($this->entries[$key]);
	}
}
