<?php
use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Bitrix\Main\ModuleManager;

Loc::loadMessages(__FILE__);

/**
 * Installer of isobox.connector: registers the module, creates the spool
 * table, registers the three rest handlers and the spool agent; uninstall
 * removes exactly these and the module's options.
 */
class isobox_connector extends CModule
{
	public $MODULE_ID = 'isobox.connector';
	public $MODULE_VERSION;
	public $MODULE_VERSION_DATE;
	public $MODULE_NAME;
	public $MODULE_DESCRIPTION;
	public $PARTNER_NAME;
	public $PARTNER_URI;
	public $MODULE_GROUP_RIGHTS = 'Y';

	/** Agent that flushes the spool, and how often (seconds). */
	private const AGENT = '\\Isobox\\Connector\\Relay::agent();';
	private const AGENT_INTERVAL = 60;

	public function __construct()
	{
		$arModuleVersion = [];
		include __DIR__ . '/version.php';
		$this->MODULE_VERSION = $arModuleVersion['VERSION'];
		$this->MODULE_VERSION_DATE = $arModuleVersion['VERSION_DATE'];
		$this->MODULE_NAME = Loc::getMessage('ISOBOX_CONNECTOR_MODULE_NAME');
		$this->MODULE_DESCRIPTION = Loc::getMessage('ISOBOX_CONNECTOR_MODULE_DESCRIPTION');
		$this->PARTNER_NAME = Loc::getMessage('ISOBOX_CONNECTOR_PARTNER_NAME');
		$this->PARTNER_URI = 'https://github.com/isobox/isobox';
	}

	/**
	 * The one handler list: InstallEvents registers it, UnInstallEvents
	 * removes it with the same arguments.
	 * [from module, event, class, method, sort]
	 */
	public static function handlers(): array
	{
		return [
			// Before the core's \Bitrix\Rest\OAuth\Auth (sort 100), which would
			// otherwise claim every token and ask the cloud.
			['rest', 'OnRestCheckAuth', '\\Isobox\\Connector\\Validator', 'onRestCheckAuth', 90],
			['rest', 'onApplicationManagerInitialize', '\\Isobox\\Connector\\AuthProvider', 'onApplicationManagerInitialize', 100],
			['rest', 'onEventManagerInitialize', '\\Isobox\\Connector\\EventProvider', 'onEventManagerInitialize', 100],
		];
	}

	public function DoInstall()
	{
		global $APPLICATION;

		if (!ModuleManager::isModuleInstalled('rest'))
		{
			$APPLICATION->ThrowException(Loc::getMessage('ISOBOX_CONNECTOR_INSTALL_NEED_REST'));

			return false;
		}
		if (!$this->InstallDB())
		{
			return false;
		}
		ModuleManager::registerModule($this->MODULE_ID);
		$this->InstallEvents();
		$this->InstallAgents();

		return true;
	}

	public function DoUninstall()
	{
		$this->flushSpool();
		$this->UnInstallAgents();
		$this->UnInstallEvents();
		$this->UnInstallDB();
		Option::delete($this->MODULE_ID);
		ModuleManager::unRegisterModule($this->MODULE_ID);

		return true;
	}

	public function InstallDB()
	{
		global $APPLICATION;

		// The spool's DDL and queries are written and tested for MySQL/MariaDB.
		if (strtolower(Application::getConnection()->getType()) !== 'mysql')
		{
			$APPLICATION->ThrowException(Loc::getMessage('ISOBOX_CONNECTOR_INSTALL_DB_TYPE'));

			return false;
		}
		$errors = $this->runSql('install.sql');
		if ($errors !== false)
		{
			$APPLICATION->ThrowException(Loc::getMessage('ISOBOX_CONNECTOR_INSTALL_DB_ERROR') . ' ' . implode(' ', (array)$errors));

			return false;
		}

		return true;
	}

	public function UnInstallDB()
	{
		$this->runSql('uninstall.sql');

		return true;
	}

	public function InstallEvents()
	{
		$events = EventManager::getInstance();
		foreach (self::handlers() as [$from, $event, $class, $method, $sort])
		{
			$events->registerEventHandler($from, $event, $this->MODULE_ID, $class, $method, $sort);
		}

		return true;
	}

	public function UnInstallEvents()
	{
		$events = EventManager::getInstance();
		foreach (self::handlers() as [$from, $event, $class, $method])
		{
			$events->unRegisterEventHandler($from, $event, $this->MODULE_ID, $class, $method);
		}

		return true;
	}

	public function InstallAgents()
	{
		CAgent::AddAgent(self::AGENT, $this->MODULE_ID, 'N', self::AGENT_INTERVAL, '', 'Y', '', 100, false, false);
	}

	public function UnInstallAgents()
	{
		CAgent::RemoveModuleAgents($this->MODULE_ID);
	}

	/**
	 * Hands events still waiting in the spool to eventrelay before the table
	 * goes (best effort: what the relay does not take is dropped with it).
	 */
	private function flushSpool(): void
	{
		try
		{
			if (Loader::includeModule($this->MODULE_ID))
			{
				\Isobox\Connector\Module::relay()->flush(\Isobox\Connector\Relay::AGENT_BATCHES);
			}
		}
		catch (\Throwable $e)
		{
			// The table may already be gone (a half-finished earlier uninstall).
		}
	}

	/** Runs install/db/<database type>/$file; false on success, else the errors. */
	private function runSql(string $file)
	{
		global $DB;

		$type = strtolower(Application::getConnection()->getType());

		return $DB->RunSQLBatch(__DIR__ . '/db/' . $type . '/' . $file);
	}
}
