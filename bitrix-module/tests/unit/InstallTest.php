<?php
namespace Isobox\Tests\Unit;

use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\ModuleManager;
use Isobox\Tests\Portal;
use PHPUnit\Framework\TestCase;

final class InstallTest extends TestCase
{
	public function testInstallRegistersEverythingAndUninstallLeavesThePortalAsItWas(): void
	{
		Portal::boot();
		$before = Portal::snapshot();

		$installer = Portal::install();
		$this->assertTrue(ModuleManager::isModuleInstalled('isobox.connector'));
		$this->assertTrue(Application::getConnection()->isTableExists('b_isobox_connector_spool'));

		// Our validator runs before the core's (sort 90 < 100), the providers are hooked.
		$auth = EventManager::getInstance()->findEventHandlers('rest', 'OnRestCheckAuth');
		$this->assertSame(['\Isobox\Connector\Validator', '\Bitrix\Rest\OAuth\Auth'], array_column($auth, 'TO_CLASS'));
		$this->assertSame([90, 100], array_column($auth, 'SORT'));
		$this->assertSame('isobox.connector', $auth[0]['TO_MODULE_ID']);
		foreach ([
			'onApplicationManagerInitialize' => '\Isobox\Connector\AuthProvider',
			'onEventManagerInitialize' => '\Isobox\Connector\EventProvider',
		] as $event => $class)
		{
			$this->assertSame([$class], array_column(EventManager::getInstance()->findEventHandlers('rest', $event), 'TO_CLASS'), $event);
		}
		$this->assertCount(count(\isobox_connector::handlers()), array_filter(
			Portal::snapshot()['b_module_to_module'],
			static fn($row) => $row['TO_MODULE_ID'] === 'isobox.connector'
		));
		$agents = Portal::snapshot()['b_agent'];
		$this->assertSame(['\Isobox\Connector\Relay::agent();'], array_column($agents, 'NAME'));
		$this->assertSame('isobox.connector', $agents[0]['MODULE_ID']);

		// Installing twice does not duplicate handlers or the agent.
		$installer->InstallEvents();
		$installer->InstallAgents();
		$this->assertCount(2, EventManager::getInstance()->findEventHandlers('rest', 'OnRestCheckAuth'));
		$this->assertCount(1, Portal::snapshot()['b_agent']);

		// Settings an administrator saved, and a spooled event, go with the module.
		Option::set('isobox.connector', 'cache_ttl', '9');
		Option::set('isobox.connector', 'relay_url', 'http://127.0.0.1:1');
		Application::getConnection()->add('b_isobox_connector_spool', ['ITEM_ID' => 'x', 'PAYLOAD' => '{}', 'CREATED_AT' => 1, 'ATTEMPTS' => 0]);

		$this->assertTrue($installer->DoUninstall());
		$this->assertEquals($before, Portal::snapshot());
	}

	public function testInstallRefusesAPortalWithoutTheRestModule(): void
	{
		Portal::boot();
		ModuleManager::unRegisterModule('rest');
		$before = Portal::snapshot();

		$installer = \CModule::CreateModuleObject('isobox.connector');
		$this->assertFalse($installer->DoInstall());
		$this->assertSame('The "rest" module must be installed first.', $GLOBALS['APPLICATION']->GetException());
		$this->assertEquals($before, Portal::snapshot());
	}

	public function testInstallRefusesADatabaseItWasNotWrittenFor(): void
	{
		Portal::boot();
		$before = Portal::snapshot();
		$pdo = Application::getConnection()->pdo();
		Application::setConnection(new class($pdo) extends \Bitrix\Main\DB\Connection {
			public function getType()
			{
				return 'pgsql';
			}
		});

		$this->assertFalse(\CModule::CreateModuleObject('isobox.connector')->DoInstall());
		$this->assertSame('The module needs a MySQL or MariaDB database.', $GLOBALS['APPLICATION']->GetException());
		$this->assertEquals($before, Portal::snapshot());
	}

	public function testInstallerDescribesTheModule(): void
	{
		Portal::boot();
		$installer = \CModule::CreateModuleObject('isobox.connector');
		$this->assertSame('isobox.connector', $installer->MODULE_ID);
		$this->assertMatchesRegularExpression('/^\d+\.\d+\.\d+$/', $installer->MODULE_VERSION);
		$this->assertSame('isobox connector', $installer->MODULE_NAME);
		$this->assertNotEmpty($installer->MODULE_DESCRIPTION);
	}
}
