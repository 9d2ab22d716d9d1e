<?php
namespace Isobox\Tests;

use Bitrix\Main\Application;
use Bitrix\Main\Context;
use Bitrix\Main\DB\Connection;
use Bitrix\Rest\AppTable;
use Bitrix\Rest\Event\Sender;
use Bitrix\Rest\Event\Session;
use Bitrix\Rest\OAuthService;
use Isobox\Connector\Cache\MemoryStore;
use Isobox\Connector\Module;

/**
 * A stand-in portal: a document root whose bitrix/modules/isobox.connector is
 * the module under test, a SQLite database with the core tables the module
 * touches, and the globals a portal hit has ($DB, $APPLICATION, $USER).
 */
final class Portal
{
	public const MODULE = 'isobox.connector';

	public static string $root = '';
	public static ?MemoryStore $cache = null;
	public static int $now = 0;

	/** Boots the portal on a SQLite file (shared between processes) or ':memory:'. */
	public static function boot(string $db = ':memory:'): void
	{
		if (!defined('B_PROLOG_INCLUDED'))
		{
			define('B_PROLOG_INCLUDED', true);
			define('LANGUAGE_ID', getenv('ISOBOX_TEST_LANG') ?: 'en');
		}
		self::$root = sys_get_temp_dir() . '/isobox-portal-' . getmypid();
		if (!is_dir(self::$root . '/bitrix/modules'))
		{
			mkdir(self::$root . '/bitrix/modules', 0777, true);
		}
		$link = self::$root . '/bitrix/modules/' . self::MODULE;
		if (!is_link($link))
		{
			symlink(realpath(__DIR__ . '/../../' . self::MODULE), $link);
			$root = self::$root;
			register_shutdown_function(static function () use ($root, $link): void {
				@unlink($link);
				@rmdir($root . '/bitrix/modules');
				@rmdir($root . '/bitrix');
				@rmdir($root);
			});
		}
		$_SERVER['DOCUMENT_ROOT'] = self::$root;

		$pdo = new \PDO('sqlite:' . $db);
		$pdo->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
		$pdo->exec('PRAGMA busy_timeout = 5000');
		foreach ([
			'CREATE TABLE IF NOT EXISTS b_module (ID VARCHAR(50) PRIMARY KEY)',
			'CREATE TABLE IF NOT EXISTS b_module_to_module (ID INTEGER PRIMARY KEY AUTOINCREMENT, SORT INT, FROM_MODULE_ID VARCHAR(50), MESSAGE_ID VARCHAR(255), TO_MODULE_ID VARCHAR(50), TO_CLASS VARCHAR(255), TO_METHOD VARCHAR(255), TO_PATH VARCHAR(255), TO_METHOD_ARG VARCHAR(255), VERSION INT, UNIQUE_ID VARCHAR(32) UNIQUE)',
			'CREATE TABLE IF NOT EXISTS b_option (MODULE_ID VARCHAR(50), NAME VARCHAR(100), VALUE TEXT, PRIMARY KEY (MODULE_ID, NAME))',
			'CREATE TABLE IF NOT EXISTS b_agent (ID INTEGER PRIMARY KEY AUTOINCREMENT, MODULE_ID VARCHAR(50), SORT INT, NAME TEXT, ACTIVE CHAR(1), AGENT_INTERVAL INT, IS_PERIOD CHAR(1), USER_ID INT NULL)',
			"INSERT OR IGNORE INTO b_module (ID) VALUES ('main')",
			"INSERT OR IGNORE INTO b_module (ID) VALUES ('rest')",
		] as $sql)
		{
			$pdo->exec($sql);
		}
		Application::setConnection(new Connection($pdo));
		\Bitrix\Main\EventManager::resetInstance();
		\Bitrix\Main\Config\Option::clearCache();
		// The rest module's own validator, as its installer registers it
		// (RegisterModuleDependences: VERSION 1, sort 100).
		\Bitrix\Main\EventManager::getInstance()->registerEventHandlerCompatible(
			'rest', 'OnRestCheckAuth', 'rest', '\\Bitrix\\Rest\\OAuth\\Auth', 'onRestCheckAuth'
		);
		$GLOBALS['DB'] = new \CDatabase();
		$GLOBALS['APPLICATION'] = new \CMain();
		$GLOBALS['ISOBOX_TEST_LOG'] = [];
		AppTable::$rows = [];
		AppTable::$updates = [];
		OAuthService::$cloudCalls = [];
		\CUser::$users = [1 => ['ACTIVE' => 'Y'], 5 => ['ACTIVE' => 'Y'], 6 => ['ACTIVE' => 'N']];
		self::$now = time();
		self::$cache = null;
		self::newHit();
	}

	public static function now(): int
	{
		return self::$now;
	}

	/**
	 * Starts a new hit: the per-hit state of the core and the module is gone
	 * (as in a new PHP-FPM request); the module's answer cache survives, as
	 * APCu does between requests.
	 */
	public static function newHit(array $headers = []): void
	{
		Application::resetHit();
		\Bitrix\Rest\Application::resetHit();
		Sender::resetHit();
		Session::reset();
		Context::$headers = $headers;
		$GLOBALS['USER'] = new \CUser();
		// The module's classes are known once it is installed and included.
		if (class_exists(Module::class))
		{
			self::$cache ??= new MemoryStore([self::class, 'now']);
			Module::reset();
			Module::override(self::$cache, [self::class, 'now']);
		}
	}

	/** Installs the module as the admin page does: include install/index.php, DoInstall(). */
	public static function install(): \isobox_connector
	{
		$installer = \CModule::CreateModuleObject(self::MODULE);
		if (!$installer instanceof \isobox_connector)
		{
			throw new \RuntimeException('no installer');
		}
		if ($installer->DoInstall() !== true)
		{
			throw new \RuntimeException('install failed: ' . $GLOBALS['APPLICATION']->GetException());
		}
		\CModule::IncludeModule(self::MODULE);
		self::newHit();

		return $installer;
	}

	/** Installs the module unless an earlier process already did (a shared database). */
	public static function installOnce(): void
	{
		if (\Bitrix\Main\ModuleManager::isModuleInstalled(self::MODULE))
		{
			\CModule::IncludeModule(self::MODULE);
			self::newHit();

			return;
		}
		self::install();
	}

	/** Sets module options (and the portal's own OAuth identity). */
	public static function configure(array $options, string $clientId = '', string $clientSecret = ''): void
	{
		foreach ($options as $name => $value)
		{
			\Bitrix\Main\Config\Option::set(self::MODULE, $name, (string)$value);
		}
		if ($clientId !== '')
		{
			\Bitrix\Main\Config\Option::set('rest', 'service_client_id', $clientId);
			\Bitrix\Main\Config\Option::set('rest', 'service_client_secret', $clientSecret);
		}
		self::newHit();
	}

	/** Adds an installed local app (b_rest_app row). */
	public static function addApp(string $clientId, string $scope, array $extra = []): array
	{
		$id = count(AppTable::$rows) + 1;
		$row = $extra + [
			'ID' => $id,
			'CLIENT_ID' => $clientId,
			'CODE' => $clientId,
			'CLIENT_SECRET' => 'secret-' . $id,
			'SHARED_KEY' => 'shared-' . $id,
			'APPLICATION_TOKEN' => 'apptoken-' . $id,
			'SCOPE' => $scope,
			'STATUS' => AppTable::STATUS_LOCAL,
			'ACTIVE' => 'Y',
			'INSTALLED' => 'Y',
			'ACCESS' => '',
		];
		AppTable::$rows[$id] = $row;

		return $row;
	}

	/** Everything install may touch, to compare before and after. */
	public static function snapshot(): array
	{
		$pdo = Application::getConnection()->pdo();
		$out = [];
		foreach (['b_module', 'b_module_to_module', 'b_option', 'b_agent'] as $table)
		{
			$out[$table] = $pdo->query('SELECT * FROM ' . $table . ' ORDER BY 1')->fetchAll(\PDO::FETCH_ASSOC);
		}
		$out['tables'] = $pdo->query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")->fetchAll(\PDO::FETCH_COLUMN);

		return $out;
	}
}
