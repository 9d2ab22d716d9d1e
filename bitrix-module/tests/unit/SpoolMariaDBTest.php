<?php
namespace Isobox\Tests\Unit;

use Bitrix\Main\Application;
use Bitrix\Main\DB\Connection;
use Isobox\Connector\Spool;
use Isobox\Tests\Portal;
use PHPUnit\Framework\TestCase;

/**
 * The spool's DDL (install/db/mysql) and queries on the engine portals run:
 * the throwaway MariaDB that the project's test command starts
 * (ISOBOX_TEST_MARIADB, a Go DSN such as root@tcp(127.0.0.1:33306)/).
 */
final class SpoolMariaDBTest extends TestCase
{
	private static ?\PDO $server = null;
	private static string $database = '';

	public static function setUpBeforeClass(): void
	{
		$dsn = (string)getenv('ISOBOX_TEST_MARIADB');
		if (!preg_match('#^([^:@]*)(?::([^@]*))?@tcp\(([^:)]+):(\d+)\)/#', $dsn, $m))
		{
			self::fail('ISOBOX_TEST_MARIADB is not set (run scripts/mariadb.sh start, or make test): got "' . $dsn . '"');
		}
		self::$server = new \PDO("mysql:host={$m[3]};port={$m[4]};charset=utf8mb4", $m[1], $m[2] ?? '', [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
		self::$database = 'isobox_module_' . bin2hex(random_bytes(4));
		self::$server->exec('CREATE DATABASE ' . self::$database . ' CHARACTER SET utf8mb4');
		self::$server->exec('USE ' . self::$database);
	}

	public static function tearDownAfterClass(): void
	{
		self::$server?->exec('DROP DATABASE IF EXISTS ' . self::$database);
		self::$server = null;
	}

	public function testInstallSqlAndSpoolQueriesRunOnMariaDB(): void
	{
		Portal::boot();
		Portal::install(); // loads the module (on the stand-in's SQLite)
		$connection = new Connection(self::$server);
		Application::setConnection($connection);
		$dir = __DIR__ . '/../../isobox.connector/install/db/mysql/';

		$this->assertFalse($GLOBALS['DB']->RunSQLBatch($dir . 'install.sql'));
		$this->assertTrue($connection->isTableExists(Spool::TABLE));
		$this->assertFalse($GLOBALS['DB']->RunSQLBatch($dir . 'install.sql'), 'install.sql must be re-runnable');

		$spool = new Spool($connection, static fn() => 1700000000);
		$this->assertTrue($spool->isEmpty());
		$tricky = ['id' => 'b', 'query' => ['QUERY_DATA' => ['data' => ['TITLE' => "Сделка 'quoted' \\ back\\slash \"x\" <tag> \u{1F600}"]]]];
		$spool->add([['id' => 'a', 'n' => 1], $tricky, ['id' => 'c', 'n' => 3]]);
		$this->assertSame(3, $spool->count());

		$head = $spool->head(2);
		$this->assertSame([['id' => 'a', 'n' => 1], $tricky], array_values($head), 'payload did not round-trip');
		$ids = array_keys($head);
		$this->assertLessThan($ids[1], $ids[0]);

		$spool->failed([$ids[0]]);
		$spool->refuse([$ids[1]]);
		$this->assertSame(2, $spool->count());
		$this->assertSame(1, $spool->refusedCount());
		$this->assertSame(['a', 'c'], array_column($spool->head(10), 'id'), 'a refused row is still offered');

		$spool->remove(array_keys($spool->head(10)));
		$this->assertTrue($spool->isEmpty());

		$this->assertFalse($GLOBALS['DB']->RunSQLBatch($dir . 'uninstall.sql'));
		$this->assertFalse($connection->isTableExists(Spool::TABLE));
	}
}
