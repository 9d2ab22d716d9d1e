<?php
namespace Isobox\Tests\Unit;

use Isobox\Connector\Cache\ApcuStore;
use Isobox\Connector\Cache\ScopedStore;
use Isobox\Connector\Cache\ManagedStore;
use Isobox\Connector\Cache\MemoryStore;
use Isobox\Connector\Cache\Store;
use Isobox\Connector\Module;
use Isobox\Tests\Portal;
use PHPUnit\Framework\TestCase;

final class CacheTest extends TestCase
{
	protected function setUp(): void
	{
		Portal::boot();
		Portal::install();
	}

	public function testMemoryStoreFollowsItsClock(): void
	{
		$now = 1000;
		$store = new MemoryStore(static function () use (&$now) {
			return $now;
		});
		$store->set('a', ['v' => 1], 5);
		$store->set('zero', ['v' => 2], 0);
		$this->assertSame(['v' => 1], $store->get('a'));
		$this->assertNull($store->get('zero'), 'a lifetime of 0 stores nothing');
		$now = 1004;
		$this->assertSame(['v' => 1], $store->get('a'));
		$now = 1005;
		$this->assertNull($store->get('a'));
		$store->set('b', ['v' => 3], 5);
		$store->delete('b');
		$this->assertNull($store->get('b'));
	}

	public function testManagedStoreKeepsEntriesUnderItsOwnTable(): void
	{
		$this->assertTrue(ManagedStore::available());
		$store = new ManagedStore();
		$store->set('k', ['v' => 1], 60);
		$store->set('zero', ['v' => 2], 0);
		$this->assertSame(['v' => 1], (new ManagedStore())->get('k'));
		$this->assertNull($store->get('zero'));
		$this->assertNull($store->get('missing'));
		$store->delete('k');
		$this->assertNull($store->get('k'));
	}

	public function testApcuStore(): void
	{
		// run.sh turns APCu on for the CLI (apc.enable_cli=1); scripts/deps.sh installs it.
		$this->assertTrue(ApcuStore::available(), 'APCu is not enabled in this PHP');
		$store = new ApcuStore();
		$key = 'test.' . bin2hex(random_bytes(4));
		$store->set($key, ['v' => 1], 60);
		$store->set($key . '.zero', ['v' => 2], 0);
		$this->assertSame(['v' => 1], (new ApcuStore())->get($key));
		$this->assertFalse(apcu_exists($key), 'the module must keep to its own key space');
		$this->assertTrue(apcu_exists('isobox.connector:' . $key));
		$this->assertNull($store->get($key . '.zero'), 'a lifetime of 0 stores nothing');
		$store->delete($key);
		$this->assertNull($store->get($key));
	}

	public function testTheModulePicksTheFastestSharedCacheThisPhpHas(): void
	{
		Module::reset();
		$this->assertInstanceOf(ScopedStore::class, Module::cache(), 'the cache is scoped to the portal');
		$this->assertInstanceOf(ApcuStore::class, Module::cache()->inner(), 'APCu is available and must be preferred');
		$this->assertInstanceOf(Store::class, Module::cache());
	}
}
