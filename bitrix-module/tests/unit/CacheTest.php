<?php
namespace Isobox\Tests\Unit;

use Isobox\Connector\Cache\ApcuStore;
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

	public function testTheModulePicksTheFastestSharedCacheThisPhpHas(): void
	{
		Module::reset();
		$expected = ApcuStore::available() ? ApcuStore::class : ManagedStore::class;
		$this->assertInstanceOf($expected, Module::cache());
		$this->assertInstanceOf(Store::class, Module::cache());
	}
}
