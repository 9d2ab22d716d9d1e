<?php
// Stand-ins for the global (non-namespaced) part of Bitrix's main module
// that the installer, the settings page and the auth chain use. Signatures
// follow main/classes/general/module.php, agent.php and main/tools.php (B26).

use Bitrix\Main\Application;
use Bitrix\Main\DB\Connection;
use Bitrix\Main\EventManager;
use Bitrix\Main\Loader;
use Bitrix\Main\ModuleManager;

class CModule
{
	var $MODULE_NAME;
	var $MODULE_DESCRIPTION;
	var $MODULE_VERSION;
	var $MODULE_VERSION_DATE;
	var $MODULE_ID;
	var $MODULE_SORT = 10000;
	var $SHOW_SUPER_ADMIN_GROUP_RIGHTS;
	var $MODULE_GROUP_RIGHTS;
	var $PARTNER_NAME;
	var $PARTNER_URI;

	function InstallDB()
	{
		return false;
	}

	function UnInstallDB()
	{
	}

	function InstallEvents()
	{
	}

	function UnInstallEvents()
	{
	}

	function InstallFiles()
	{
	}

	function UnInstallFiles()
	{
	}

	function DoInstall()
	{
	}

	function DoUninstall()
	{
	}

	function IsInstalled()
	{
		return ModuleManager::isModuleInstalled($this->MODULE_ID);
	}

	public static function IncludeModule($module_name)
	{
		return Loader::includeModule($module_name);
	}

	/** As the core: include install/index.php of the module and build its installer. */
	public static function CreateModuleObject($moduleId)
	{
		$path = Loader::getDocumentRoot() . '/bitrix/modules/' . $moduleId . '/install/index.php';
		if (!is_file($path))
		{
			return false;
		}
		include_once $path;
		$className = str_replace('.', '_', $moduleId);

		return class_exists($className) ? new $className() : false;
	}
}

/** b_agent. */
class CAgent
{
	public static function AddAgent(
		$name,
		$module = "",
		$period = "N",
		$interval = 86400,
		$datecheck = "",
		$active = "Y",
		$next_exec = "",
		$sort = 100,
		$user_id = false,
		$existError = true
	)
	{
		$pdo = Application::getConnection()->pdo();
		$st = $pdo->prepare('SELECT ID FROM b_agent WHERE NAME = ? AND ' . ($user_id ? 'USER_ID = ' . (int)$user_id : 'USER_ID IS NULL'));
		$st->execute([$name]);
		$existing = $st->fetchColumn();
		if ($existing !== false)
		{
			return $existError ? false : (int)$existing;
		}
		$pdo->prepare('INSERT INTO b_agent (MODULE_ID, SORT, NAME, ACTIVE, AGENT_INTERVAL, IS_PERIOD, USER_ID) VALUES (?, ?, ?, ?, ?, ?, ?)')
			->execute([$module, (int)$sort, $name, $active, (int)$interval, $period, $user_id ?: null]);

		return (int)$pdo->lastInsertId();
	}

	public static function RemoveAgent($name, $module = "", $user_id = false)
	{
		Application::getConnection()->pdo()->prepare('DELETE FROM b_agent WHERE NAME = ? AND COALESCE(MODULE_ID, \'\') = ? AND ' . ($user_id ? 'USER_ID = ' . (int)$user_id : 'USER_ID IS NULL'))
			->execute([$name, (string)$module]);
	}

	public static function RemoveModuleAgents($module)
	{
		if ($module <> '')
		{
			Application::getConnection()->pdo()->prepare('DELETE FROM b_agent WHERE MODULE_ID = ?')->execute([$module]);
		}
	}

	/**
	 * Stand-in only: what the core's agent runner does for each active agent —
	 * include its module, evaluate NAME, keep the returned NAME (or delete the
	 * agent when it returns nothing).
	 */
	public static function runAll(): int
	{
		$pdo = Application::getConnection()->pdo();
		$ran = 0;
		foreach ($pdo->query("SELECT ID, NAME, MODULE_ID FROM b_agent WHERE ACTIVE = 'Y' ORDER BY SORT, ID")->fetchAll(PDO::FETCH_ASSOC) as $agent)
		{
			if ($agent['MODULE_ID'] !== '' && $agent['MODULE_ID'] !== null && !CModule::IncludeModule($agent['MODULE_ID']))
			{
				continue;
			}
			$eval_result = '';
			eval('$eval_result=' . $agent['NAME']);
			$ran++;
			if ((string)$eval_result === '')
			{
				$pdo->prepare('DELETE FROM b_agent WHERE ID = ?')->execute([$agent['ID']]);
			}
			else
			{
				$pdo->prepare('UPDATE b_agent SET NAME = ? WHERE ID = ?')->execute([$eval_result, $agent['ID']]);
			}
		}

		return $ran;
	}
}

/** $DB: the old-style database object the installer uses for RunSQLBatch. */
class CDatabase
{
	public $type = 'MYSQL';

	/** Runs a SQL file statement by statement (";" at line end); false on success, else the errors. */
	public function RunSQLBatch($filepath)
	{
		if (!is_file($filepath))
		{
			return ["File not found: $filepath"];
		}
		$errors = [];
		$statement = '';
		foreach (file($filepath) as $line)
		{
			$statement .= $line;
			if (preg_match('/;\s*$/', $line))
			{
				try
				{
					$connection = Application::getConnection();
					$sql = rtrim(trim($statement), ';');
					$connection->pdo()->exec($connection->driver() === 'sqlite' ? Connection::fromMysql($sql) : $sql);
				}
				catch (PDOException $e)
				{
					$errors[] = $e->getMessage();
				}
				$statement = '';
			}
		}

		return $errors === [] ? false : $errors;
	}

	public function Query($sql)
	{
		return Application::getConnection()->query($sql);
	}
}

class CMain
{
	/** Stand-in only: the current user's right on every module. */
	public string $right = 'W';
	private $exception = null;
	public array $authForms = [];

	public function GetGroupRight($module_id, $arGroups = false, $use_default_level = "Y", $max_right_for_super_admin = "Y", $site_id = false)
	{
		return $this->right;
	}

	public function ThrowException($msg, $id = false)
	{
		$this->exception = $msg;
	}

	public function GetException()
	{
		return $this->exception;
	}

	public function ResetException()
	{
		$this->exception = null;
	}

	public function GetCurPage($get_index_page = null)
	{
		return '/bitrix/admin/settings.php';
	}

	public function AuthForm($mess, $show_prolog = true, $show_epilog = true, $not_show_links = "N", $do_die = true)
	{
		$this->authForms[] = $mess;
	}
}

/** $USER: who is logged in on this hit. */
class CUser
{
	/** Stand-in only: the portal's users, id => ['ACTIVE' => 'Y'|'N']. */
	public static array $users = [];
	/** Stand-in only: ids of the portal's administrators (group 1). */
	public static array $admins = [1];
	private int $id = 0;

	public function IsAdmin()
	{
		return $this->id > 0 && in_array($this->id, self::$admins, true);
	}

	public function IsAuthorized()
	{
		return $this->id > 0;
	}

	public function GetID()
	{
		return $this->id > 0 ? $this->id : null;
	}

	public function Authorize($id, $bSave = false, $bUpdate = true, $applicationId = null, $regenerateSession = true)
	{
		if (!isset(self::$users[$id]) || self::$users[$id]['ACTIVE'] !== 'Y')
		{
			return false;
		}
		$this->id = (int)$id;

		return true;
	}

	public function Logout()
	{
		$this->id = 0;
	}

	public function CanAccess($arCodes)
	{
		return in_array('U' . $this->id, (array)$arCodes, true);
	}
}

class CTimeZone
{
	public static function getOffset($USER_ID = null, $forced = false)
	{
		return 10800;
	}
}

class CAdminTabControl
{
	public function __construct(public $name, public $tabs, $bCanExpand = true, $bDenyAutoSave = false)
	{
	}

	public function Begin()
	{
		echo '<div class="adm-detail-block" id="' . htmlspecialcharsbx($this->name) . '">';
	}

	public function BeginNextTab()
	{
		echo '<table class="adm-detail-content-table">';
	}

	public function Buttons($aParams = false)
	{
		echo '</table><div class="adm-detail-content-btns">';
	}

	public function End()
	{
		echo '</div></div>';
	}
}

/** As the core: the message is printed as HTML, unescaped. */
class CAdminMessage
{
	public static function ShowMessage($message)
	{
		echo '<div class="adm-info-message-red">' . (is_array($message) ? ($message['MESSAGE'] ?? '') : (string)$message) . '</div>';
	}

	public static function ShowNote($message)
	{
		echo '<div class="adm-info-message-green">' . (string)$message . '</div>';
	}
}

function bitrix_sessid()
{
	return $GLOBALS['ISOBOX_TEST_SESSID'] ?? 'test-session-id';
}

function check_bitrix_sessid($varname = 'sessid')
{
	return isset($_REQUEST[$varname]) && (string)$_REQUEST[$varname] === bitrix_sessid();
}

function bitrix_sessid_post($varname = 'sessid', $returnInvocations = false)
{
	return '<input type="hidden" name="' . $varname . '" id="' . $varname . '" value="' . bitrix_sessid() . '" />';
}

function htmlspecialcharsbx($string, $flags = ENT_COMPAT, $doubleEncode = true)
{
	return htmlspecialchars((string)$string, $flags, 'UTF-8', $doubleEncode);
}

function AddMessage2Log($text, $module = '', $traceDepth = 6, $showArgs = false)
{
	$GLOBALS['ISOBOX_TEST_LOG'][] = $text;
}

function RegisterModule($id)
{
	ModuleManager::registerModule($id);
}

function UnRegisterModule($id)
{
	ModuleManager::unRegisterModule($id);
}

function IsModuleInstalled($module_id)
{
	return ModuleManager::isModuleInstalled($module_id);
}

function GetModuleEvents($MODULE_ID, $MESSAGE_ID, $bReturnArray = false)
{
	$result = EventManager::getInstance()->findEventHandlers($MODULE_ID, $MESSAGE_ID);
	foreach ($result as $k => $event)
	{
		$result[$k]['FROM_MODULE_ID'] = $MODULE_ID;
		$result[$k]['MESSAGE_ID'] = $MESSAGE_ID;
	}

	return $result;
}

/** As the core: include the handler's module (null if it is not installed), then call it. */
function ExecuteModuleEventEx($arEvent, $arParams = [])
{
	if (isset($arEvent['TO_MODULE_ID']) && $arEvent['TO_MODULE_ID'] <> '' && $arEvent['TO_MODULE_ID'] <> 'main')
	{
		if (!CModule::IncludeModule($arEvent['TO_MODULE_ID']))
		{
			return null;
		}
	}
	if ((empty($arEvent['TO_CLASS']) || empty($arEvent['TO_METHOD'])) && !isset($arEvent['CALLBACK']))
	{
		return true;
	}
	$args = (isset($arEvent['TO_METHOD_ARG']) && is_array($arEvent['TO_METHOD_ARG']) && !empty($arEvent['TO_METHOD_ARG']))
		? array_merge($arEvent['TO_METHOD_ARG'], $arParams)
		: $arParams;
	if (isset($arEvent['CALLBACK']))
	{
		return call_user_func_array($arEvent['CALLBACK'], $args);
	}
	if (class_exists($arEvent['TO_CLASS']) && is_callable([$arEvent['TO_CLASS'], $arEvent['TO_METHOD']]))
	{
		return call_user_func_array([$arEvent['TO_CLASS'], $arEvent['TO_METHOD']], $args);
	}

	return null;
}
