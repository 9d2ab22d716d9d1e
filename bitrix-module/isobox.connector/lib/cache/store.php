<?php
namespace Isobox\Connector\Cache;

/** A key/value cache with a lifetime per entry, for token check answers. */
interface Store
{
	/** The stored array, or null when absent or older than its lifetime. */
	public function get(string $key): ?array;

	/** Keeps $value for $ttl seconds; $ttl <= 0 stores nothing. */
	public function set(string $key, array $value, int $ttl): void;

	public function delete(string $key): void;
}
