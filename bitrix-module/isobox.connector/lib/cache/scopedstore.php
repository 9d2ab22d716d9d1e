<?php
namespace Isobox\Connector\Cache;

/**
 * One portal's part of a shared store. Several portals may run on one
 * PHP (one PHP-FPM pool, one APCu; one memcache behind the managed
 * cache): without a scope, a token check answer isobox gave one portal
 * would be served to another. The scope is derived from the portal's
 * identity, so each portal sees only what it stored.
 */
final class ScopedStore implements Store
{
	private string $prefix;

	public function __construct(private Store $inner, string $scope)
	{
		$this->prefix = 'p.' . substr(hash('sha256', $scope), 0, 24) . '.';
	}

	/** The shared store this scope is part of. */
	public function inner(): Store
	{
		return $this->inner;
	}

	public function get(string $key): ?array
	{
		return $this->inner->get($this->prefix . $key);
	}

	public function set(string $key, array $value, int $ttl): void
	{
		$this->inner->set($this->prefix . $key, $value, $ttl);
	}

	public function delete(string $key): void
	{
		$this->inner->delete($this->prefix . $key);
	}
}
