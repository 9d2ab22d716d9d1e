<?php
// Stand-ins for the parts of Bitrix's `rest` module that isobox.connector
// extends or that run around it. Signatures and flow follow B26
// (yuliai/bitrix-modules rest/lib/oauth/auth.php, provider.php,
// storagecache.php, application.php, event/sender.php, event/provideroauth.php,
// sqs.php, classes/general/rest_util.php); app rows, users and the cloud
// OAuth client are in-memory test doubles of the portal. Never shipped.

namespace Bitrix\Rest
{
	use Bitrix\Main\Config\Option;
	use Bitrix\Main\Event;
	use Bitrix\Main\SystemException;

	interface AuthStorageInterface
	{
		public function store(array $authResult);
		public function rewrite(array $authResult);
		public function restore($accessToken);
	}

	interface AuthProviderInterface
	{
		public function authorizeClient($clientId, $userId, $state = '');
		public function get($clientId, $scope, $additionalParams, $userId);
	}

	class Application
	{
		protected static $initialized = false;
		protected static $authProvider = null;

		public static function getAuthProvider()
		{
			static::initialize();
			if (static::$authProvider === null)
			{
				static::$authProvider = static::getDefaultAuthProvider();
			}

			return static::$authProvider;
		}

		public static function setAuthProvider(AuthProviderInterface $authProvider)
		{
			static::$authProvider = $authProvider;
		}

		protected static function getDefaultAuthProvider()
		{
			return OAuth\Provider::instance();
		}

		protected static function initialize()
		{
			if (!static::$initialized)
			{
				static::$initialized = true;
				$event = new Event('rest', 'onApplicationManagerInitialize');
				$event->send();
			}
		}

		/** Stand-in only: a fresh hit. */
		public static function resetHit(): void
		{
			static::$initialized = false;
			static::$authProvider = null;
		}
	}

	/** b_rest_app rows (in memory). */
	class AppTable
	{
		public const STATUS_LOCAL = 'L';
		public const STATUS_FREE = 'F';

		/** Stand-in only: id => row. */
		public static array $rows = [];
		/** Stand-in only: every update(), as [id, fields]. */
		public static array $updates = [];

		public static function getByClientId($clientId)
		{
			foreach (self::$rows as $row)
			{
				if ($row['CLIENT_ID'] === $clientId || $row['CODE'] === $clientId || (string)$row['ID'] === (string)$clientId)
				{
					return $row;
				}
			}

			return false;
		}

		public static function getByPrimary($primary, array $parameters = [])
		{
			return new class(self::$rows[$primary] ?? false) {
				public function __construct(private $row)
				{
				}

				public function fetch()
				{
					$row = $this->row;
					$this->row = false;

					return $row;
				}
			};
		}

		public static function getAppStatusInfo($app, $detailUrl)
		{
			return ['PAYMENT_ALLOW' => 'Y', 'STATUS' => $app['STATUS'] ?? 'L'];
		}

		public static function update($primary, array $data)
		{
			self::$updates[] = [$primary, $data];
			self::$rows[$primary] = array_merge(self::$rows[$primary], $data);
		}
	}

	class UsageStatTable
	{
		public static function logEvent($clientId, $eventName)
		{
		}

		public static function finalize()
		{
		}
	}

	class Sqs
	{
		public const CATEGORY_DEFAULT = 'default';
		public const CATEGORY_IMPORTANT = 'important';

		public static function queryItem($clientId, $url, $data, array $authData = array(), array $additional = array())
		{
			return [
				'client_id' => $clientId,
				'additional' => $additional,
				'auth' => $authData,
				'query' => [
					'DOMAIN' => \Bitrix\Main\Context::getCurrent()->getRequest()->getHttpHost(),
					'QUERY_URL' => $url,
					'QUERY_DATA' => $data,
				],
			];
		}
	}

	/**
	 * The portal's OAuth-server client. On an isolated box without isobox the
	 * cloud cannot be reached; the stand-in records what the core would have
	 * sent there, so tests can prove which calls did NOT go to isobox.
	 */
	class OAuthService
	{
		/** Stand-in only: calls the core made to "the cloud", as [method, args]. */
		public static array $cloudCalls = [];

		public static function getEngine()
		{
			return new class {
				public function isRegistered()
				{
					return Option::get('rest', 'service_client_id', false) !== false
						&& Option::get('rest', 'service_client_id', '') !== '';
				}

				public function getClient()
				{
					return new OAuth\Client();
				}
			};
		}

		public static function register()
		{
			OAuthService::$cloudCalls[] = ['register', []];
			throw new SystemException('stand-in: the cloud is unreachable from an isolated box');
		}

		public static function getMemberId()
		{
			$clientId = Option::get('rest', 'service_client_id', '');

			return $clientId !== '' ? md5($clientId) : null;
		}
	}
}

namespace Bitrix\Rest\Engine
{
	class Access
	{
		public const ENTITY_TYPE_APP = 'A';

		public static function isAvailable($app = '')
		{
			return true;
		}

		public static function needCheckCount()
		{
			return false;
		}

		public static function isAvailableCount($entityType, $entity = 0)
		{
			return true;
		}
	}

	class RestManager
	{
		public static function fillAlternativeScope($scope, $scopeList)
		{
			return $scopeList;
		}
	}
}

namespace Bitrix\Rest\Engine\Access
{
	class HoldEntity
	{
		public const TYPE_APP = 'A';
		/** Stand-in only: held client ids. */
		public static array $held = [];

		public static function is($type, $code)
		{
			return $type === self::TYPE_APP && in_array($code, self::$held, true);
		}
	}
}

namespace Bitrix\Rest\OAuth
{
	use Bitrix\Rest\Application;
	use Bitrix\Rest\AppTable;
	use Bitrix\Rest\AuthProviderInterface;
	use Bitrix\Rest\AuthStorageInterface;
	use Bitrix\Rest\Engine\Access;
	use Bitrix\Rest\Engine\Access\HoldEntity;
	use Bitrix\Rest\Event\Session;
	use Bitrix\Rest\OAuthService;
	use Bitrix\Main\SystemException;

	/** What the core would send to the cloud OAuth server; records and fails as an offline box does. */
	class Client
	{
		public function checkAuth($accessToken)
		{
			OAuthService::$cloudCalls[] = ['rest.check', [$accessToken]];

			return false;
		}

		public function getAuth($clientId, $scope, array $additionalParams = [])
		{
			OAuthService::$cloudCalls[] = ['rest.authorize', [$clientId, $scope, $additionalParams]];

			return false;
		}

		public function getCode($clientId, $state, $additionalParams)
		{
			OAuthService::$cloudCalls[] = ['rest.code', [$clientId, $state, $additionalParams]];

			return false;
		}

		public function sendEvent(array $eventItems)
		{
			OAuthService::$cloudCalls[] = ['rest.event.call', [$eventItems]];

			return false;
		}
	}

	/** The core's hour-long token storage, in the managed cache. */
	class StorageCache implements AuthStorageInterface
	{
		public const CACHE_TTL = 3600;
		public const CACHE_PREFIX = 'oauth_';

		public function store(array $authResult)
		{
			$cache = \Bitrix\Main\Application::getInstance()->getManagedCache();
			$cache->read(static::CACHE_TTL, static::CACHE_PREFIX . $authResult['access_token']);
			$cache->set(static::CACHE_PREFIX . $authResult['access_token'], $authResult);
		}

		public function rewrite(array $authResult)
		{
			$cache = \Bitrix\Main\Application::getInstance()->getManagedCache();
			$cache->clean(static::CACHE_PREFIX . $authResult['access_token']);
			$this->store($authResult);
		}

		public function restore($accessToken)
		{
			$cache = \Bitrix\Main\Application::getInstance()->getManagedCache();
			if ($cache->read(static::CACHE_TTL, static::CACHE_PREFIX . $accessToken))
			{
				return $cache->get(static::CACHE_PREFIX . $accessToken);
			}

			return false;
		}
	}

	/** The core's OnRestCheckAuth handler for OAuth tokens, with every post-check of B26. */
	class Auth
	{
		const AUTH_TYPE = 'oauth';
		const CACHE_TTL = 3600;
		const CACHE_PREFIX = 'oauth_';
		const PARAM_LOCAL_USER = 'LOCAL_USER';
		const PARAM_TZ_OFFSET = 'TZ_OFFSET';

		protected static $storage = null;
		protected static $authQueryParams = ['auth', 'access_token'];
		protected static $authQueryAdditional = ['auth_connector'];

		public static function authorizeClient($clientId, $userId, $state = '')
		{
			return Application::getAuthProvider()->authorizeClient($clientId, $userId, $state);
		}

		public static function get($clientId, $scope, $additionalParams, $userId)
		{
			return Application::getAuthProvider()->get($clientId, $scope, $additionalParams, $userId);
		}

		public static function storeRegisteredAuth(array $tokenInfo)
		{
			static::getStorage()->store($tokenInfo);
		}

		public static function onRestCheckAuth(array $query, $scope, &$res)
		{
			$authKey = static::getAuthKey($query);
			if (!$authKey)
			{
				return null;
			}
			$tokenInfo = static::check($authKey);
			if (!is_array($tokenInfo))
			{
				return false;
			}
			$error = array_key_exists('error', $tokenInfo);

			if (!$error && !array_key_exists('client_id', $tokenInfo))
			{
				$tokenInfo = ['error' => 'CONNECTION_ERROR', 'error_description' => 'Error connecting to authorization server'];
				$error = true;
			}
			if (!$error && HoldEntity::is(HoldEntity::TYPE_APP, $tokenInfo['client_id']))
			{
				$tokenInfo = ['error' => 'OVERLOAD_LIMIT', 'error_description' => 'REST API is blocked due to overload.'];
				$error = true;
			}
			if (!$error && (!Access::isAvailable($tokenInfo['client_id']) || (Access::needCheckCount() && !Access::isAvailableCount(Access::ENTITY_TYPE_APP, $tokenInfo['client_id']))))
			{
				$tokenInfo = ['error' => 'ACCESS_DENIED', 'error_description' => 'REST is available only on commercial plans.'];
				$error = true;
			}
			if (!$error)
			{
				$clientInfo = AppTable::getByClientId($tokenInfo['client_id']);
				if (is_array($clientInfo))
				{
					\CRestUtil::updateAppStatus($tokenInfo);
				}
				if (!is_array($clientInfo) || $clientInfo['ACTIVE'] !== 'Y')
				{
					$tokenInfo = ['error' => 'APPLICATION_NOT_FOUND', 'error_description' => 'Application not found'];
					$error = true;
				}
			}
			if (!$error && $tokenInfo['expires'] <= time())
			{
				$tokenInfo = ['error' => 'expired_token', 'error_description' => 'The access token provided has expired'];
				$error = true;
			}
			if (!$error && $scope !== \CRestUtil::GLOBAL_SCOPE && isset($tokenInfo['scope']))
			{
				$tokenScope = \Bitrix\Rest\Engine\RestManager::fillAlternativeScope($scope, explode(',', $tokenInfo['scope']));
				if (!in_array($scope, $tokenScope))
				{
					$tokenInfo = ['error' => 'insufficient_scope', 'error_description' => 'The request requires higher privileges than provided by the access token'];
					$error = true;
				}
			}
			if (!$error && $tokenInfo['user_id'] > 0)
			{
				global $USER;
				if ($USER instanceof \CUser && $USER->isAuthorized())
				{
					if ((int)$USER->getId() !== (int)$tokenInfo['user_id'])
					{
						$tokenInfo = ['error' => 'authorization_error', 'error_description' => 'Log out before authorizing with a token.'];
						$error = true;
					}
				}
				elseif (!\CRestUtil::makeAuth($tokenInfo, self::AUTH_TYPE, $clientInfo['ID'] ?? 0))
				{
					$tokenInfo = ['error' => 'authorization_error', 'error_description' => 'Unable to authorize user'];
					$error = true;
				}
				elseif (!\CRestUtil::checkAppAccess($tokenInfo['client_id']))
				{
					$tokenInfo = ['error' => 'user_access_error', 'error_description' => 'The user does not have access to the application.'];
					$error = true;
				}
			}

			$res = $tokenInfo;
			$res['parameters_clear'] = static::$authQueryParams;
			$res['auth_type'] = static::AUTH_TYPE;
			$res['parameters_callback'] = [__CLASS__, 'updateTokenParameters'];
			foreach (static::$authQueryAdditional as $key)
			{
				if (array_key_exists($key, $query))
				{
					$res[$key] = $query[$key];
					$res['parameters_clear'][] = $key;
				}
			}

			return !$error;
		}

		public static function getAuthKey(array $query)
		{
			$authKey = null;
			$authHeader = \Bitrix\Main\Application::getInstance()->getContext()->getRequest()->getHeader('Authorization');
			if ($authHeader !== null && preg_match('/^Bearer\s+/i', $authHeader))
			{
				$authKey = preg_replace('/^Bearer\s+/i', '', $authHeader);
			}
			if ($authKey === null)
			{
				foreach (static::$authQueryParams as $key)
				{
					if (array_key_exists($key, $query) && !is_array($query[$key]))
					{
						$authKey = $query[$key];
						break;
					}
				}
			}

			return $authKey;
		}

		public static function updateTokenParameters($tokenInfo)
		{
			$authResult = static::getStorage()->restore($tokenInfo['access_token']);
			if (is_array($authResult))
			{
				$authResult['parameters'] = array_replace_recursive(is_array($authResult['parameters'] ?? null) ? $authResult['parameters'] : [], $tokenInfo['parameters']);
				static::getStorage()->rewrite($authResult);
			}
		}

		protected static function check($accessToken)
		{
			$authResult = static::getStorage()->restore($accessToken);
			if ($authResult === false)
			{
				if (!OAuthService::getEngine()->isRegistered())
				{
					try
					{
						OAuthService::register();
					}
					catch (SystemException $e)
					{
						return ['error' => 'CONNECTION_ERROR', 'error_description' => 'Error connecting to authorization server'];
					}
				}
				$tokenInfo = OAuthService::getEngine()->getClient()->checkAuth($accessToken);
				if (is_array($tokenInfo))
				{
					if (isset($tokenInfo['result']))
					{
						$authResult = $tokenInfo['result'];
						$authResult['user_id'] = $authResult['parameters'][static::PARAM_LOCAL_USER];
						unset($authResult['parameters'][static::PARAM_LOCAL_USER]);
						if (!isset($authResult['expires']) && isset($authResult['expires_in']))
						{
							$authResult['expires'] = time() + $authResult['expires_in'];
						}
					}
					else
					{
						$authResult = $tokenInfo;
						$authResult['access_token'] = $accessToken;
					}
					static::getStorage()->store($authResult);
				}
				else
				{
					$authResult = ['access_token' => $accessToken];
				}
			}

			return $authResult;
		}

		protected static function getTokenParams($additionalParams, $userId)
		{
			$additionalParams = is_array($additionalParams) ? $additionalParams : [];
			$additionalParams[static::PARAM_LOCAL_USER] = $userId;
			$additionalParams[static::PARAM_TZ_OFFSET] = \CTimeZone::getOffset();
			$additionalParams[Session::PARAM_SESSION] = Session::get();

			return $additionalParams;
		}

		public static function getStorage()
		{
			if (static::$storage === null)
			{
				static::setStorage(new StorageCache());
			}

			return static::$storage;
		}

		public static function setStorage(AuthStorageInterface $storage)
		{
			static::$storage = $storage;
		}
	}

	/** The core's auth provider: asks the OAuth server (rest.authorize / rest.code). */
	class Provider implements AuthProviderInterface
	{
		protected static $instance = null;

		public static function instance()
		{
			if (static::$instance === null)
			{
				static::$instance = new static();
			}

			return static::$instance;
		}

		public function authorizeClient($clientId, $userId, $state = '')
		{
			if ($userId > 0)
			{
				$codeInfo = $this->getClient()->getCode($clientId, $state, $this->getTokenParams([], $userId));

				return is_array($codeInfo) && !empty($codeInfo['result']) ? $codeInfo['result'] : $codeInfo;
			}

			return false;
		}

		public function get($clientId, $scope, $additionalParams, $userId)
		{
			if ($userId > 0)
			{
				$authResult = $this->getClient()->getAuth($clientId, $scope, $this->getTokenParams($additionalParams, $userId));
				if (!empty($authResult['result']) && is_array($authResult['result']))
				{
					if ($authResult['result']['access_token'])
					{
						$authResult['result']['user_id'] = $userId;
						$authResult['result']['client_id'] = $clientId;
						Auth::storeRegisteredAuth($authResult['result']);
					}

					return $authResult['result'];
				}

				return $authResult;
			}

			return false;
		}

		protected function getClient()
		{
			if (!OAuthService::getEngine()->isRegistered())
			{
				try
				{
					OAuthService::register();
				}
				catch (SystemException)
				{
				}
			}

			return OAuthService::getEngine()->getClient();
		}

		protected function getTokenParams($additionalParams, $userId)
		{
			$additionalParams = is_array($additionalParams) ? $additionalParams : [];
			$additionalParams[Auth::PARAM_LOCAL_USER] = $userId;
			$additionalParams[Auth::PARAM_TZ_OFFSET] = \CTimeZone::getOffset();
			$additionalParams[Session::PARAM_SESSION] = Session::get();

			return $additionalParams;
		}
	}
}

namespace Bitrix\Rest\Event
{
	use Bitrix\Main\Context;
	use Bitrix\Main\Event;
	use Bitrix\Main\SystemException;
	use Bitrix\Rest\AppTable;
	use Bitrix\Rest\OAuth\Auth;
	use Bitrix\Rest\OAuthService;
	use Bitrix\Rest\Sqs;
	use Bitrix\Rest\UsageStatTable;

	interface ProviderInterface
	{
		public function send(array $queryData);
	}

	interface ProviderOfflineInterface
	{
		public function send(array $eventList);
	}

	class Session
	{
		const PARAM_SESSION = 'EVENT_SESSION';
		private static $TTL = null;
		private static $ttlDecreased = false;
		private static $set = false;

		public static function get()
		{
			if (!self::$set)
			{
				self::$TTL = \CRestUtil::HANDLER_SESSION_TTL;
				self::$ttlDecreased = true;
			}
			elseif (!self::$ttlDecreased)
			{
				self::$TTL--;
				self::$ttlDecreased = true;
			}

			return self::$TTL <= 0 ? false : self::$TTL;
		}

		public static function set($session)
		{
			self::$TTL = is_array($session) ? $session['TTL'] : $session;
			self::$ttlDecreased = false;
			self::$set = true;
		}

		/** Stand-in only: a fresh hit. */
		public static function reset(): void
		{
			self::$TTL = null;
			self::$ttlDecreased = false;
			self::$set = false;
		}
	}

	/** The core's default: everything to the OAuth server's rest.event.call. */
	class ProviderOAuth implements ProviderInterface
	{
		protected static $instance = null;

		public static function instance()
		{
			if (static::$instance === null)
			{
				static::$instance = new static();
			}

			return static::$instance;
		}

		public function send(array $queryData)
		{
			try
			{
				if (!OAuthService::getEngine()->isRegistered())
				{
					OAuthService::register();
				}
			}
			catch (SystemException $e)
			{
			}
			if (OAuthService::getEngine()->isRegistered())
			{
				OAuthService::getEngine()->getClient()->sendEvent($queryData);
			}
		}
	}

	class ProviderOffline implements ProviderOfflineInterface
	{
		protected static $instance = null;
		/** Stand-in only. */
		public static array $sent = [];

		public static function instance()
		{
			return static::$instance ??= new static();
		}

		public function send(array $eventList)
		{
			self::$sent[] = $eventList;
		}
	}

	/** Transport of REST events (B26 Sender without diagnostics logging and the event buffer's dedupe). */
	class Sender
	{
		protected static $initialized = false;
		protected static $forkSet = false;
		protected static $queryData = [];
		protected static $provider;
		protected static $providerOffline;
		protected static $defaultEventParams = [
			'category' => Sqs::CATEGORY_DEFAULT,
			'sendAuth' => true,
			'sendRefreshToken' => false,
		];

		public static function getDefaultEventParams()
		{
			return static::$defaultEventParams;
		}

		public static function getAuth($appId, $userId, array $additionalData = [], array $additional = [])
		{
			$auth = null;
			$application = AppTable::getByClientId($appId);
			if ($application)
			{
				if ($userId > 0 && $additional['sendAuth'] && OAuthService::getEngine()->isRegistered())
				{
					$auth = \Bitrix\Rest\Application::getAuthProvider()->get($application['CLIENT_ID'], $application['SCOPE'], $additionalData, $userId);
					if (is_array($auth) && !$additional['sendRefreshToken'])
					{
						unset($auth['refresh_token']);
					}
				}
				if (!is_array($auth))
				{
					$auth = ['domain' => Context::getCurrent()->getRequest()->getHttpHost(), 'member_id' => \CRestUtil::getMemberId()];
				}
				$auth['application_token'] = \CRestUtil::getApplicationToken($application);
			}

			return $auth;
		}

		public static function call($handlersList)
		{
			global $USER;

			$offlineEvents = [];
			foreach ($handlersList as $handlerInfo)
			{
				[$handler, $data, $additional] = $handlerInfo;
				foreach (static::$defaultEventParams as $key => $value)
				{
					if (!isset($additional[$key]))
					{
						$additional[$key] = $value;
					}
				}
				$session = Session::get();
				if (!$session)
				{
					return;
				}
				$userId = $handler['USER_ID'] > 0
					? $handler['USER_ID']
					: (is_object($USER) && $USER->isAuthorized() ? $USER->getId() : 0);

				$authData = null;
				if (isset($handler['APP_ID']) && $handler['APP_ID'] > 0)
				{
					$application = AppTable::getByPrimary($handler['APP_ID'])->fetch();
					$appStatus = AppTable::getAppStatusInfo($application, '');
					if ($appStatus['PAYMENT_ALLOW'] === 'Y')
					{
						$authData = [
							Session::PARAM_SESSION => $session,
							Auth::PARAM_LOCAL_USER => $userId,
							'application_token' => \CRestUtil::getApplicationToken($application),
						];
					}
					if ($handler['EVENT_HANDLER'] <> '')
					{
						UsageStatTable::logEvent($application['CLIENT_ID'], $handler['EVENT_NAME']);
					}
				}
				else
				{
					$application = ['CLIENT_ID' => null];
					$authData = [
						Session::PARAM_SESSION => $session,
						Auth::PARAM_LOCAL_USER => $userId,
						'application_token' => $handler['APPLICATION_TOKEN'],
					];
				}

				if ($authData)
				{
					if ($handler['EVENT_HANDLER'] !== '')
					{
						self::$queryData[] = Sqs::queryItem(
							$application['CLIENT_ID'],
							$handler['EVENT_HANDLER'],
							[
								'event' => $handler['EVENT_NAME'],
								'event_handler_id' => $handler['ID'],
								'data' => $data,
								'ts' => time(),
							],
							$authData,
							$additional
						);
					}
					else
					{
						$offlineEvents[] = ['HANDLER' => $handler, 'APPLICATION' => $application, 'AUTH' => $authData, 'DATA' => $data];
					}
				}
			}

			if (count($offlineEvents) > 0)
			{
				static::getProviderOffline()->send($offlineEvents);
			}
			if (count(static::$queryData) > 0 && !static::$forkSet)
			{
				$application = \Bitrix\Main\Application::getInstance();
				$application->addBackgroundJob(job: [__CLASS__, 'send'], priority: $application::JOB_PRIORITY_LOW);
				static::$forkSet = true;
			}
		}

		public static function send(): void
		{
			if (count(self::$queryData) > 0)
			{
				UsageStatTable::finalize();
				static::getProvider()->send(self::$queryData);
				self::$queryData = [];
				self::$forkSet = false;
			}
		}

		public static function getProvider()
		{
			static::initialize();
			if (!static::$provider)
			{
				static::$provider = static::getDefaultProvider();
			}

			return static::$provider;
		}

		public static function setProvider(ProviderInterface $provider)
		{
			static::$provider = $provider;
		}

		protected static function getDefaultProvider()
		{
			return ProviderOAuth::instance();
		}

		public static function getProviderOffline()
		{
			static::initialize();
			if (!static::$providerOffline)
			{
				static::$providerOffline = static::getDefaultProviderOffline();
			}

			return static::$providerOffline;
		}

		public static function setProviderOffline(ProviderOfflineInterface $providerOffline)
		{
			static::$providerOffline = $providerOffline;
		}

		protected static function getDefaultProviderOffline()
		{
			return ProviderOffline::instance();
		}

		protected static function initialize()
		{
			if (!static::$initialized)
			{
				static::$initialized = true;
				$event = new Event('rest', 'onEventManagerInitialize');
				$event->send();
			}
		}

		/** Stand-in only: a fresh hit. */
		public static function resetHit(): void
		{
			static::$initialized = false;
			static::$forkSet = false;
			static::$queryData = [];
			static::$provider = null;
			static::$providerOffline = null;
		}
	}
}

namespace
{
	use Bitrix\Main\Config\Option;

	class CRestUtil
	{
		public const GLOBAL_SCOPE = '_global';
		const HANDLER_SESSION_TTL = 7;

		public static function checkAuth($query, $scope, &$res)
		{
			if (!is_array($query))
			{
				$query = ['auth' => $query];
			}
			foreach (GetModuleEvents('rest', 'OnRestCheckAuth', true) as $eventHandler)
			{
				$eventResult = ExecuteModuleEventEx($eventHandler, [$query, $scope, &$res]);
				if ($eventResult !== null)
				{
					return $eventResult;
				}
			}
			$res = ['error' => 'NO_AUTH_FOUND', 'error_description' => 'Wrong authorization data'];

			return false;
		}

		/** B26 signature; authorizes the token's user on this hit if the user exists and is active. */
		public static function makeAuth($authToken, $applicationType = null, ?int $applicationId = null): bool
		{
			global $USER;

			return $USER instanceof \CUser && $USER->Authorize((int)($authToken['user_id'] ?? 0));
		}

		public static function checkAppAccess($appId, $appInfo = null)
		{
			global $USER;
			$appInfo ??= \Bitrix\Rest\AppTable::getByClientId($appId);
			if (!$appInfo)
			{
				return false;
			}
			if (empty($appInfo['ACCESS']))
			{
				return true;
			}

			return $USER->CanAccess(explode(',', $appInfo['ACCESS']));
		}

		public static function updateAppStatus(array $tokenInfo)
		{
			if (array_key_exists('status', $tokenInfo) && array_key_exists('client_id', $tokenInfo)
				&& ($appInfo = \Bitrix\Rest\AppTable::getByClientId($tokenInfo['client_id'])))
			{
				if (!empty($tokenInfo['status']) && $tokenInfo['status'] !== $appInfo['STATUS'])
				{
					\Bitrix\Rest\AppTable::update($appInfo['ID'], ['STATUS' => $tokenInfo['status']]);
				}
			}

			return null;
		}

		public static function getApplicationToken(array $application)
		{
			if (!empty($application['APPLICATION_TOKEN']))
			{
				return $application['APPLICATION_TOKEN'];
			}

			return md5(self::getMemberId() . '|' . $application['ID'] . '|' . $application['CLIENT_SECRET'] . '|' . ($application['SHARED_KEY'] ?? ''));
		}

		public static function getMemberId()
		{
			return \Bitrix\Rest\OAuthService::getMemberId();
		}

		public static function getEndpoint()
		{
			return 'https://' . \Bitrix\Main\Context::getCurrent()->getRequest()->getHttpHost() . Option::get('rest', 'rest_server_path', '/rest') . '/';
		}

		public static function isAdmin(?int $userId = null): bool
		{
			return false;
		}
	}
}
