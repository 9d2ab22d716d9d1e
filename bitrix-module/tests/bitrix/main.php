<?php
// Stand-ins for the classes of Bitrix's `main` module that isobox.connector
// touches. Signatures follow the real core (B26, yuliai/bitrix-modules
// main/lib/*.php, main/classes/general/*.php, main/tools.php); the bodies are
// the smallest faithful behaviour, storing the portal's tables (b_module,
// b_module_to_module, b_option, b_agent) in SQLite so state survives between
// test processes like a real portal's database does. Never shipped.

namespace Bitrix\Main
{
	class SystemException extends \Exception
	{
	}

	class ArgumentException extends SystemException
	{
	}

	class ArgumentNullException extends ArgumentException
	{
	}

	class LoaderException extends SystemException
	{
	}

	class Application
	{
		public const JOB_PRIORITY_NORMAL = 100;
		public const JOB_PRIORITY_LOW = 50;

		private static ?Application $instance = null;
		private static ?DB\Connection $connection = null;
		private ?Data\ManagedCache $managedCache = null;
		private array $jobs = [];

		public static function getInstance()
		{
			return self::$instance ??= new static();
		}

		public function getContext()
		{
			return Context::getCurrent();
		}

		public static function getConnection($name = '')
		{
			if (self::$connection === null)
			{
				throw new SystemException('stand-in: no database (call \\Isobox\\Tests\\Portal::boot)');
			}

			return self::$connection;
		}

		/** Stand-in only: the portal's database. */
		public static function setConnection(DB\Connection $connection): void
		{
			self::$connection = $connection;
		}

		public function getManagedCache()
		{
			return $this->managedCache ??= new Data\ManagedCache();
		}

		public function addBackgroundJob(callable $job, array $args = [], $priority = self::JOB_PRIORITY_NORMAL)
		{
			$this->jobs[] = [$job, $args, $priority];
		}

		/**
		 * Stand-in only: what terminate() does after the response is sent —
		 * runs the queued background jobs, highest priority first.
		 */
		public function runBackgroundJobs(): void
		{
			$jobs = $this->jobs;
			$this->jobs = [];
			usort($jobs, static fn($a, $b) => $b[2] <=> $a[2]);
			foreach ($jobs as [$job, $args])
			{
				call_user_func_array($job, $args);
			}
		}

		/** Stand-in only: a fresh hit. */
		public static function resetHit(): void
		{
			self::$instance = null;
			Context::resetCurrent();
		}
	}

	class Server
	{
		public function __construct(private string $host)
		{
		}

		public function getHttpHost()
		{
			return $this->host;
		}
	}

	class HttpRequest
	{
		public function __construct(private array $headers, private string $host)
		{
		}

		public function getHeader($name)
		{
			foreach ($this->headers as $key => $value)
			{
				if (strcasecmp($key, $name) === 0)
				{
					return $value;
				}
			}

			return null;
		}

		public function getHttpHost()
		{
			return $this->host;
		}
	}

	class Context
	{
		private static ?Context $current = null;
		/** Stand-in only: request headers and host of the current hit. */
		public static array $headers = [];
		public static string $host = 'portal.test';

		public static function getCurrent()
		{
			return self::$current ??= new self();
		}

		public static function resetCurrent(): void
		{
			self::$current = null;
		}

		public function getRequest()
		{
			return new HttpRequest(self::$headers, self::$host);
		}

		public function getServer()
		{
			return new Server(self::$host);
		}
	}

	class EventResult
	{
		public const UNDEFINED = 0;
		public const SUCCESS = 1;
		public const ERROR = 2;

		public function __construct(protected $type, protected $parameters = null, protected $moduleId = null, protected $handler = null)
		{
		}

		public function getType()
		{
			return $this->type;
		}

		public function getParameters()
		{
			return $this->parameters;
		}
	}

	class Event
	{
		protected array $results = [];

		public function __construct(protected $moduleId, protected $type, protected $parameters = [], protected $filter = null)
		{
		}

		public function getModuleId()
		{
			return $this->moduleId;
		}

		public function getEventType()
		{
			return $this->type;
		}

		public function getParameters()
		{
			return $this->parameters;
		}

		public function getFilter()
		{
			return $this->filter;
		}

		public function addResult(EventResult $result)
		{
			$this->results[] = $result;
		}

		public function getResults()
		{
			return $this->results;
		}

		public function addDebugInfo($ar)
		{
		}

		public function send($sender = null)
		{
			EventManager::getInstance()->send($this);
		}
	}

	/**
	 * b_module_to_module, as EventManager keeps it (UNIQUE_ID, insert-ignore);
	 * like the core, the rows are loaded once and reloaded after a change.
	 */
	class EventManager
	{
		private static ?EventManager $instance = null;
		private array $runtime = [];
		private ?array $loaded = null;

		protected function __construct()
		{
		}

		public static function getInstance()
		{
			return self::$instance ??= new static();
		}

		/** Stand-in only: a new database. */
		public static function resetInstance(): void
		{
			self::$instance = null;
		}

		public function addEventHandler($fromModuleId, $eventType, $callback, $includeFile = false, $sort = 100)
		{
			$this->runtime[] = [
				'FROM_MODULE_ID' => strtoupper($fromModuleId), 'MESSAGE_ID' => strtoupper($eventType),
				'CALLBACK' => $callback, 'SORT' => (int)$sort, 'VERSION' => 2, 'TO_MODULE_ID' => '',
			];

			return count($this->runtime) - 1;
		}

		public function registerEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $sort = 100, $toPath = '', $toMethodArg = [])
		{
			$this->registerInternal($fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $sort, $toPath, $toMethodArg, 2);
		}

		public function registerEventHandlerCompatible($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $sort = 100, $toPath = '', $toMethodArg = [])
		{
			$this->registerInternal($fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $sort, $toPath, $toMethodArg, 1);
		}

		public function unRegisterEventHandler($fromModuleId, $eventType, $toModuleId, $toClass = '', $toMethod = '', $toPath = '', $toMethodArg = [])
		{
			$toMethodArg = (!is_array($toMethodArg) || empty($toMethodArg)) ? '' : serialize($toMethodArg);
			Application::getConnection()->pdo()->prepare(
				'DELETE FROM b_module_to_module WHERE FROM_MODULE_ID = ? AND MESSAGE_ID = ? AND TO_MODULE_ID = ?'
				. ' AND COALESCE(TO_CLASS, \'\') = ? AND COALESCE(TO_METHOD, \'\') = ? AND COALESCE(TO_PATH, \'\') = ? AND COALESCE(TO_METHOD_ARG, \'\') = ?'
			)->execute([$fromModuleId, $eventType, $toModuleId, (string)$toClass, (string)$toMethod, (string)$toPath, $toMethodArg]);
			$this->clearLoadedHandlers();
		}

		public function clearLoadedHandlers()
		{
			$this->loaded = null;
		}

		private function registerInternal($fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $sort, $toPath, $toMethodArg, $version)
		{
			$toMethodArg = (!is_array($toMethodArg) || empty($toMethodArg)) ? '' : serialize($toMethodArg);
			$unique = md5(mb_strtolower($fromModuleId . '.' . $eventType . '.' . $toModuleId . '.' . $toPath . '.' . $toClass . '.' . $toMethod . '.' . $toMethodArg . '.' . $version));
			Application::getConnection()->pdo()->prepare(
				'INSERT OR IGNORE INTO b_module_to_module (SORT, FROM_MODULE_ID, MESSAGE_ID, TO_MODULE_ID, TO_CLASS, TO_METHOD, TO_PATH, TO_METHOD_ARG, VERSION, UNIQUE_ID)'
				. ' VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
			)->execute([(int)$sort, $fromModuleId, $eventType, $toModuleId, $toClass, $toMethod, $toPath, $toMethodArg, (int)$version, $unique]);
			$this->clearLoadedHandlers();
		}

		/** Handlers of one event, ascending SORT; module id and event type case-insensitive. */
		public function findEventHandlers($eventModuleId, $eventType, ?array $filter = null)
		{
			if ($this->loaded === null)
			{
				$this->loaded = [];
				foreach (Application::getConnection()->pdo()->query('SELECT * FROM b_module_to_module ORDER BY SORT, ID')->fetchAll(\PDO::FETCH_ASSOC) as $row)
				{
					$row['TO_METHOD_ARG'] = $row['TO_METHOD_ARG'] !== '' ? unserialize($row['TO_METHOD_ARG']) : [];
					$row['VERSION'] = (int)$row['VERSION'];
					$row['SORT'] = (int)$row['SORT'];
					$this->loaded[strtoupper($row['FROM_MODULE_ID'])][strtoupper($row['MESSAGE_ID'])][] = $row;
				}
			}
			$handlers = $this->loaded[strtoupper($eventModuleId)][strtoupper($eventType)] ?? [];
			foreach ($this->runtime as $row)
			{
				if ($row['FROM_MODULE_ID'] === strtoupper($eventModuleId) && $row['MESSAGE_ID'] === strtoupper($eventType))
				{
					$handlers[] = $row;
				}
			}
			usort($handlers, static fn($a, $b) => $a['SORT'] <=> $b['SORT']);
			if (is_array($filter) && $filter !== [])
			{
				$handlers = array_values(array_filter($handlers, static fn($h) => in_array($h['TO_MODULE_ID'], $filter, true)));
			}

			return $handlers;
		}

		public function send(Event $event)
		{
			foreach ($this->findEventHandlers($event->getModuleId(), $event->getEventType(), $event->getFilter()) as $handler)
			{
				if (!empty($handler['TO_MODULE_ID']) && $handler['TO_MODULE_ID'] !== 'main' && !Loader::includeModule($handler['TO_MODULE_ID']))
				{
					continue;
				}
				$args = is_array($handler['TO_METHOD_ARG'] ?? null) ? $handler['TO_METHOD_ARG'] : [];
				if ($handler['VERSION'] > 1)
				{
					$args[] = $event;
				}
				else
				{
					$args = array_merge($args, array_values($event->getParameters()));
				}
				$callback = $handler['CALLBACK'] ?? [$handler['TO_CLASS'], $handler['TO_METHOD']];
				$result = call_user_func_array($callback, $args);
				if ($result !== null)
				{
					$event->addResult($result instanceof EventResult ? $result : new EventResult(EventResult::UNDEFINED, $result, $handler['TO_MODULE_ID'] ?? null));
				}
			}
		}
	}

	/** b_module. */
	class ModuleManager
	{
		public static function isModuleInstalled($moduleName)
		{
			$st = Application::getConnection()->pdo()->prepare('SELECT ID FROM b_module WHERE ID = ?');
			$st->execute([$moduleName]);

			return $st->fetch() !== false;
		}

		public static function registerModule($moduleName)
		{
			Application::getConnection()->pdo()->prepare('INSERT OR IGNORE INTO b_module (ID) VALUES (?)')->execute([$moduleName]);
		}

		public static function unRegisterModule($moduleName)
		{
			// As the core: the module's agents go too; its handlers and options stay
			// (the module's own uninstaller must remove them).
			\CAgent::RemoveModuleAgents($moduleName);
			Application::getConnection()->pdo()->prepare('DELETE FROM b_module WHERE ID = ?')->execute([$moduleName]);
		}

		public static function getInstalledModules()
		{
			$out = [];
			foreach (Application::getConnection()->pdo()->query('SELECT ID FROM b_module ORDER BY ID') as $row)
			{
				$out[$row['ID']] = ['ID' => $row['ID']];
			}

			return $out;
		}
	}

	/**
	 * Module inclusion and the class map of registerAutoLoadClasses. Modules
	 * live under $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/<id>'. The core
	 * modules stood in for here (main, rest) count as loaded when installed.
	 */
	class Loader
	{
		private static array $classes = [];
		private static array $loaded = ['main' => true];
		private static bool $registered = false;

		public static function includeModule($moduleName)
		{
			if (!is_string($moduleName) || $moduleName === '')
			{
				throw new LoaderException('Empty module name');
			}
			if (isset(self::$loaded[$moduleName]))
			{
				return self::$loaded[$moduleName];
			}
			if (!ModuleManager::isModuleInstalled($moduleName))
			{
				return false;
			}
			self::$loaded[$moduleName] = true;
			$include = self::getDocumentRoot() . '/bitrix/modules/' . $moduleName . '/include.php';
			if (is_file($include))
			{
				include_once $include;
			}

			return true;
		}

		public static function getDocumentRoot()
		{
			return rtrim((string)($_SERVER['DOCUMENT_ROOT'] ?? ''), '/');
		}

		public static function registerAutoLoadClasses($moduleName, array $classes)
		{
			self::register();
			foreach ($classes as $class => $file)
			{
				self::$classes[strtolower(ltrim($class, '\\'))] = ['module' => $moduleName, 'file' => $file];
			}
		}

		public static function autoLoad($className)
		{
			$key = strtolower(ltrim($className, '\\'));
			if (!isset(self::$classes[$key]))
			{
				return;
			}
			$entry = self::$classes[$key];
			$path = $entry['module'] === null
				? self::getDocumentRoot() . $entry['file']
				: self::getDocumentRoot() . '/bitrix/modules/' . $entry['module'] . '/' . $entry['file'];
			if (is_file($path))
			{
				require_once $path;
			}
		}

		/** Stand-in only: a fresh process. */
		public static function forget(string $moduleName): void
		{
			unset(self::$loaded[$moduleName]);
		}

		private static function register(): void
		{
			if (!self::$registered)
			{
				spl_autoload_register([self::class, 'autoLoad']);
				self::$registered = true;
			}
		}
	}
}

namespace Bitrix\Main\Config
{
	use Bitrix\Main\Application;
	use Bitrix\Main\ArgumentNullException;
	use Bitrix\Main\Loader;

	/**
	 * b_option; defaults from the module's default_option.php. Like the core,
	 * a module's options are read once and kept until set() or delete().
	 */
	class Option
	{
		private static array $values = [];
		private static array $defaults = [];

		/** Stand-in only: a new database. */
		public static function clearCache(): void
		{
			self::$values = [];
			self::$defaults = [];
		}

		public static function get($moduleId, $name, $default = "", $siteId = false)
		{
			$value = static::getRealValue($moduleId, $name, $siteId);
			if ($value !== null)
			{
				return $value;
			}
			if ($default == "")
			{
				$defaults = array_change_key_case(static::getDefaults($moduleId));
				if (isset($defaults[mb_strtolower($name)]))
				{
					return $defaults[mb_strtolower($name)];
				}
			}

			return $default;
		}

		public static function getRealValue($moduleId, $name, $siteId = false)
		{
			$moduleId = mb_strtolower($moduleId);
			if (!isset(self::$values[$moduleId]))
			{
				$st = Application::getConnection()->pdo()->prepare('SELECT NAME, VALUE FROM b_option WHERE MODULE_ID = ?');
				$st->execute([$moduleId]);
				self::$values[$moduleId] = $st->fetchAll(\PDO::FETCH_KEY_PAIR);
			}
			$value = self::$values[$moduleId][mb_strtolower($name)] ?? null;

			return $value === null ? null : (string)$value;
		}

		public static function getDefaults($moduleId)
		{
			if (isset(self::$defaults[$moduleId]))
			{
				return self::$defaults[$moduleId];
			}
			$file = Loader::getDocumentRoot() . '/bitrix/modules/' . $moduleId . '/default_option.php';
			if (!is_file($file))
			{
				return [];
			}
			$var = str_replace('.', '_', $moduleId) . '_default_option';
			$$var = [];
			include $file;

			return self::$defaults[$moduleId] = is_array($$var) ? $$var : [];
		}

		public static function getForModule($moduleId, $siteId = false)
		{
			$out = static::getDefaults($moduleId);
			$st = Application::getConnection()->pdo()->prepare('SELECT NAME, VALUE FROM b_option WHERE MODULE_ID = ?');
			$st->execute([mb_strtolower($moduleId)]);
			foreach ($st->fetchAll(\PDO::FETCH_ASSOC) as $row)
			{
				$out[$row['NAME']] = $row['VALUE'];
			}

			return $out;
		}

		public static function set($moduleId, $name, $value = "", $siteId = "")
		{
			if ($moduleId == '')
			{
				throw new ArgumentNullException('moduleId');
			}
			if ($name == '')
			{
				throw new ArgumentNullException('name');
			}
			Application::getConnection()->pdo()->prepare('INSERT OR REPLACE INTO b_option (MODULE_ID, NAME, VALUE) VALUES (?, ?, ?)')
				->execute([mb_strtolower($moduleId), mb_strtolower($name), (string)$value]);
			unset(self::$values[mb_strtolower($moduleId)]);
		}

		public static function delete($moduleId, array $filter = [])
		{
			if ($moduleId == '')
			{
				throw new ArgumentNullException('moduleId');
			}
			unset(self::$values[mb_strtolower($moduleId)]);
			if (isset($filter['name']))
			{
				Application::getConnection()->pdo()->prepare('DELETE FROM b_option WHERE MODULE_ID = ? AND NAME = ?')
					->execute([mb_strtolower($moduleId), mb_strtolower($filter['name'])]);

				return;
			}
			Application::getConnection()->pdo()->prepare('DELETE FROM b_option WHERE MODULE_ID = ?')->execute([mb_strtolower($moduleId)]);
		}
	}
}

namespace Bitrix\Main\DB
{
	use Bitrix\Main\SystemException;

	class SqlQueryException extends SystemException
	{
	}

	class Result
	{
		public function __construct(private \PDOStatement $statement)
		{
		}

		public function fetch()
		{
			return $this->statement->fetch(\PDO::FETCH_ASSOC);
		}

		public function fetchAll()
		{
			return $this->statement->fetchAll(\PDO::FETCH_ASSOC);
		}
	}

	class SqlHelper
	{
		public function __construct(private \PDO $pdo)
		{
		}

		/** Escapes for a string literal of THIS connection (SQLite: doubled quotes). */
		public function forSql($value, $maxLength = 0)
		{
			$value = (string)$value;
			if ($maxLength > 0)
			{
				$value = mb_substr($value, 0, $maxLength);
			}

			return substr($this->pdo->quote($value), 1, -1);
		}
	}

	/**
	 * A D7 connection over PDO: SQLite for the stand-in portal, MariaDB for
	 * the spool's test on the real engine. It reports itself as "mysql" (the
	 * module's install SQL is chosen by type); on SQLite, RunSQLBatch
	 * translates the one MySQL-only phrase the module's DDL uses. Runtime SQL
	 * is passed as is, so the module's queries must run on both.
	 */
	class Connection
	{
		private int $affected = 0;

		public function __construct(private \PDO $pdo)
		{
			$this->pdo->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
		}

		/** Stand-in only. */
		public function pdo(): \PDO
		{
			return $this->pdo;
		}

		public function getType()
		{
			return 'mysql';
		}

		public function query($sql)
		{
			try
			{
				return new Result($this->pdo->query($sql));
			}
			catch (\PDOException $e)
			{
				throw new SqlQueryException($e->getMessage() . ' [' . $sql . ']');
			}
		}

		public function queryExecute($sql, array $binds = [])
		{
			try
			{
				$this->affected = (int)$this->pdo->exec($sql);
			}
			catch (\PDOException $e)
			{
				throw new SqlQueryException($e->getMessage() . ' [' . $sql . ']');
			}
		}

		public function getAffectedRowsCount()
		{
			return $this->affected;
		}

		public function add($tableName, array $data, $identity = "ID")
		{
			$columns = array_keys($data);
			$sql = 'INSERT INTO ' . $tableName . ' (' . implode(', ', $columns) . ') VALUES (' . implode(', ', array_fill(0, count($columns), '?')) . ')';
			try
			{
				$this->pdo->prepare($sql)->execute(array_values($data));
			}
			catch (\PDOException $e)
			{
				throw new SqlQueryException($e->getMessage() . ' [' . $sql . ']');
			}

			return (int)$this->pdo->lastInsertId();
		}

		/** Stand-in only: "sqlite" or "mysql". */
		public function driver(): string
		{
			return (string)$this->pdo->getAttribute(\PDO::ATTR_DRIVER_NAME);
		}

		public function isTableExists($tableName)
		{
			$st = $this->driver() === 'mysql'
				? $this->pdo->prepare('SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?')
				: $this->pdo->prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?");
			$st->execute([$tableName]);

			return $st->fetch() !== false;
		}

		public function getSqlHelper()
		{
			return new SqlHelper($this->pdo);
		}

		public function startTransaction()
		{
			$this->pdo->beginTransaction();
		}

		public function commitTransaction()
		{
			$this->pdo->commit();
		}

		public function rollbackTransaction()
		{
			if ($this->pdo->inTransaction())
			{
				$this->pdo->rollBack();
			}
		}

		/** MySQL DDL of the module, in SQLite words. */
		public static function fromMysql(string $sql): string
		{
			return str_replace('NOT NULL AUTO_INCREMENT PRIMARY KEY', 'PRIMARY KEY AUTOINCREMENT', $sql);
		}
	}
}

namespace Bitrix\Main\Data
{
	/** In-memory managed cache: an entry lives for the TTL given when it was first read. */
	class ManagedCache
	{
		private array $ttl = [];
		private array $vars = [];
		private static array $store = [];

		public function read($ttl, $uniqueId, $tableId = false)
		{
			$key = $tableId . '/' . $uniqueId;
			if (isset(self::$store[$key]) && self::$store[$key][0] < time())
			{
				unset(self::$store[$key]);
			}
			$this->ttl[$key] ??= (int)$ttl;

			return isset(self::$store[$key]) || array_key_exists($key, $this->vars);
		}

		public function get($uniqueId)
		{
			foreach (self::$store as $key => [$until, $value])
			{
				if (str_ends_with($key, '/' . $uniqueId))
				{
					return $value;
				}
			}
			foreach ($this->vars as $key => $value)
			{
				if (str_ends_with($key, '/' . $uniqueId))
				{
					return $value;
				}
			}

			return false;
		}

		public function set($uniqueId, $val)
		{
			foreach ($this->ttl as $key => $ttl)
			{
				if (str_ends_with($key, '/' . $uniqueId))
				{
					// The real one writes at the end of the hit; here at once.
					self::$store[$key] = [time() + $ttl, $val];
				}
			}
		}

		public function clean($uniqueId, $tableId = false)
		{
			$key = $tableId . '/' . $uniqueId;
			unset(self::$store[$key], $this->ttl[$key], $this->vars[$key]);
		}

		public function cleanAll()
		{
			self::$store = [];
			$this->ttl = [];
			$this->vars = [];
		}
	}
}

namespace Bitrix\Main\Web
{
	use Bitrix\Main\ArgumentException;

	class Json
	{
		public const DEFAULT_OPTIONS = JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE;

		public static function encode($data, $options = null)
		{
			try
			{
				return json_encode($data, ($options ?? self::DEFAULT_OPTIONS) | JSON_THROW_ON_ERROR);
			}
			catch (\JsonException $e)
			{
				throw new ArgumentException($e->getMessage());
			}
		}

		public static function decode($data)
		{
			try
			{
				return json_decode($data, true, 512, JSON_THROW_ON_ERROR);
			}
			catch (\JsonException $e)
			{
				throw new ArgumentException($e->getMessage());
			}
		}
	}

	/**
	 * HttpClient over curl: real HTTP, the real option names, timeouts in
	 * whole seconds as the core takes them, false on transport errors with
	 * getError() = [code => message].
	 */
	class HttpClient
	{
		public const DEFAULT_SOCKET_TIMEOUT = 30;
		public const DEFAULT_STREAM_TIMEOUT = 60;

		protected array $headers = [];
		protected int $socketTimeout = self::DEFAULT_SOCKET_TIMEOUT;
		protected int $streamTimeout = self::DEFAULT_STREAM_TIMEOUT;
		protected bool $redirect = true;
		protected int $status = 0;
		protected string $result = '';
		protected array $error = [];
		protected array $responseHeaders = [];

		public function __construct(?array $options = null)
		{
			$options ??= [];
			if (isset($options['redirect']))
			{
				$this->setRedirect($options['redirect']);
			}
			if (isset($options['socketTimeout']))
			{
				$this->setTimeout($options['socketTimeout']);
			}
			if (isset($options['streamTimeout']))
			{
				$this->setStreamTimeout($options['streamTimeout']);
			}
			if (isset($options['headers']))
			{
				$this->setHeaders($options['headers']);
			}
		}

		public function setHeader($name, $value, $replace = true)
		{
			foreach ($this->headers as $key => $_)
			{
				if (strcasecmp($key, $name) === 0)
				{
					if (!$replace)
					{
						return $this;
					}
					unset($this->headers[$key]);
				}
			}
			$this->headers[$name] = $value;

			return $this;
		}

		public function setHeaders(array $headers)
		{
			foreach ($headers as $name => $value)
			{
				$this->setHeader($name, $value);
			}

			return $this;
		}

		public function setRedirect($value, $max = null)
		{
			$this->redirect = (bool)$value;

			return $this;
		}

		public function setTimeout($value)
		{
			$this->socketTimeout = intval($value);

			return $this;
		}

		public function setStreamTimeout($value)
		{
			$this->streamTimeout = intval($value);

			return $this;
		}

		public function get($url)
		{
			return $this->query('GET', $url) ? $this->getResult() : false;
		}

		public function post($url, $postData = null, $multipart = false)
		{
			return $this->query('POST', $url, $postData) ? $this->getResult() : false;
		}

		public function query($method, $url, $entityBody = null)
		{
			$this->status = 0;
			$this->result = '';
			$this->error = [];
			$this->responseHeaders = [];

			if (is_array($entityBody))
			{
				$entityBody = http_build_query($entityBody, '', '&');
				$this->setHeader('Content-Type', 'application/x-www-form-urlencoded', false);
			}
			$ch = curl_init($url);
			$headers = [];
			foreach ($this->headers as $name => $value)
			{
				$headers[] = $name . ': ' . $value;
			}
			curl_setopt_array($ch, [
				CURLOPT_CUSTOMREQUEST => $method,
				CURLOPT_RETURNTRANSFER => true,
				CURLOPT_FOLLOWLOCATION => $this->redirect,
				CURLOPT_CONNECTTIMEOUT => max(1, $this->socketTimeout),
				CURLOPT_TIMEOUT => max(1, $this->socketTimeout + $this->streamTimeout),
				CURLOPT_HTTPHEADER => $headers,
				CURLOPT_HEADERFUNCTION => function ($ch, $line) {
					$parts = explode(':', $line, 2);
					if (count($parts) === 2)
					{
						$this->responseHeaders[strtolower(trim($parts[0]))] = trim($parts[1]);
					}

					return strlen($line);
				},
			]);
			if ($entityBody !== null)
			{
				curl_setopt($ch, CURLOPT_POSTFIELDS, (string)$entityBody);
			}
			$body = curl_exec($ch);
			if ($body === false)
			{
				$this->error['NETWORK'] = curl_error($ch);
				curl_close($ch);

				return false;
			}
			$this->status = (int)curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
			$this->result = (string)$body;
			curl_close($ch);

			return true;
		}

		public function getStatus()
		{
			return $this->status;
		}

		public function getResult()
		{
			return $this->result;
		}

		public function getError()
		{
			return $this->error;
		}

		public function getContentType()
		{
			return $this->responseHeaders['content-type'] ?? null;
		}
	}
}

namespace Bitrix\Main\Localization
{
	/**
	 * Messages from lang/<LANGUAGE_ID>/<path of the file under its module>,
	 * found by walking up from the file to the folder that holds lang/.
	 */
	class Loc
	{
		private static array $messages = [];
		private static array $loaded = [];

		public static function loadMessages($file)
		{
			$lang = defined('LANGUAGE_ID') ? LANGUAGE_ID : 'en';
			if (isset(self::$loaded[$lang][$file]))
			{
				return;
			}
			self::$loaded[$lang][$file] = true;
			$dir = dirname($file);
			$relative = basename($file);
			while ($dir !== '/' && $dir !== '.')
			{
				if (is_dir($dir . '/lang'))
				{
					$path = $dir . '/lang/' . $lang . '/' . $relative;
					if (is_file($path))
					{
						$MESS = [];
						include $path;
						self::$messages[$lang] = array_merge(self::$messages[$lang] ?? [], $MESS);
					}

					return;
				}
				$relative = basename($dir) . '/' . $relative;
				$dir = dirname($dir);
			}
		}

		public static function getMessage($code, $replace = null, $language = null)
		{
			$lang = $language ?? (defined('LANGUAGE_ID') ? LANGUAGE_ID : 'en');
			$message = self::$messages[$lang][$code] ?? null;
			if ($message !== null && is_array($replace))
			{
				$message = strtr($message, $replace);
			}

			return $message;
		}
	}
}
