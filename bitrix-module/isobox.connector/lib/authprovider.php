<?php
namespace Isobox\Connector;

use Bitrix\Rest\Application;
use Bitrix\Rest\AuthProviderInterface;
use Bitrix\Rest\OAuth\Provider;

/**
 * Mints app tokens and authorization codes through isobox instead of the
 * cloud's rest.authorize / rest.code, for every app the module routes (all
 * by default); other apps go to the core's provider unchanged.
 *
 * Installed per hit by the rest/onApplicationManagerInitialize handler.
 */
class AuthProvider extends Provider implements AuthProviderInterface
{
	/**
	 * Own slot: Provider::$instance may already hold the core's provider,
	 * and instance() must hand out this class.
	 *
	 * @var AuthProvider|null
	 */
	protected static $instance = null;

	private const NOT_INSTALLED = 'Application not installed';

	/** rest/onApplicationManagerInitialize handler. */
	public static function onApplicationManagerInitialize($event = null): void
	{
		Application::setAuthProvider(static::instance());
	}

	/**
	 * A token pair for the app and user, shaped as the core's Provider::get()
	 * returns it (access_token, refresh_token, expires, expires_in, scope,
	 * domain, server_endpoint, client_endpoint, member_id, status, user_id,
	 * client_id), or {error, error_description}; false without a user.
	 */
	public function get($clientId, $scope, $additionalParams, $userId)
	{
		$config = Module::config();
		if (!$config->routesApp((string)$clientId))
		{
			return parent::get($clientId, $scope, $additionalParams, $userId);
		}
		if ((int)$userId <= 0)
		{
			return false;
		}

		$parameters = self::wireParameters($this->getTokenParams($additionalParams, (int)$userId));
		$reply = Module::client()->post($config->authUrl . '/v1/token/mint', [
			'client_id' => (string)$clientId,
			'user_id' => (int)$userId,
			'scope' => is_array($scope) ? implode(',', $scope) : (string)$scope,
			'parameters' => $parameters,
		]);
		if (!$reply->ok() || $reply->json === null || empty($reply->json['access_token']))
		{
			return self::failure($reply, 'token mint');
		}

		$auth = $reply->json;
		foreach (['expires', 'expires_in', 'user_id'] as $name)
		{
			if (isset($auth[$name]))
			{
				$auth[$name] = (int)$auth[$name];
			}
		}
		// As the core's provider: the caller's user and client are in the result.
		$auth['user_id'] = (int)$userId;
		$auth['client_id'] = (string)$clientId;
		if (!isset($auth['expires']) && isset($auth['expires_in']))
		{
			$auth['expires'] = Module::now() + $auth['expires_in'];
		}

		// The core would store this in its hour-long StorageCache
		// (Auth::storeRegisteredAuth); the module's short cache is used
		// instead, so the app's first call with it needs no round trip.
		$local = Validator::parameters(is_array($parameters) ? $parameters : []);
		unset($local[Validator::PARAM_LOCAL_USER]);
		$info = [
			'access_token' => $auth['access_token'],
			'client_id' => $auth['client_id'],
			'user_id' => $auth['user_id'],
			'scope' => (string)($auth['scope'] ?? ''),
			'expires' => (int)($auth['expires'] ?? 0),
			'parameters' => $local,
		];
		if (!empty($auth['status']))
		{
			$info['status'] = $auth['status'];
		}
		Validator::remember($info);

		return $auth;
	}

	/**
	 * An authorization code for the portal's /oauth/authorize/ page:
	 * code, domain, member_id, scope, redirect_uri and, if given, state;
	 * or {error, error_description}; false without a user.
	 */
	public function authorizeClient($clientId, $userId, $state = '')
	{
		$config = Module::config();
		if (!$config->routesApp((string)$clientId))
		{
			return parent::authorizeClient($clientId, $userId, $state);
		}
		if ((int)$userId <= 0)
		{
			return false;
		}

		$parameters = $this->getTokenParams([], (int)$userId);
		$reply = Module::client()->post($config->authUrl . '/v1/token/code', [
			'client_id' => (string)$clientId,
			'user_id' => (int)$userId,
			'state' => (string)$state,
			'parameters' => self::wireParameters($parameters),
		]);
		if (!$reply->ok() || $reply->json === null || empty($reply->json['code']))
		{
			return self::failure($reply, 'code mint');
		}

		$code = $reply->json;
		// bitrix:rest.authorize appends every key to the redirect; an empty
		// state is "no state", as the cloud answers.
		if (($code['state'] ?? '') === '')
		{
			unset($code['state']);
		}

		return $code;
	}

	/**
	 * Token parameters as the API's map<string,string>. An empty map is a
	 * JSON object, not [] (which the gateway refuses).
	 */
	public static function wireParameters(?array $parameters): array|\stdClass
	{
		$out = [];
		foreach ($parameters ?? [] as $name => $value)
		{
			if ($value === null || $value === false)
			{
				continue;
			}
			$out[(string)$name] = is_scalar($value) ? (string)$value : json_encode($value);
		}

		return $out === [] ? new \stdClass() : $out;
	}

	private static function failure(Reply $reply, string $what): array
	{
		Client::log($what . ' failed: ' . $reply->describe());
		$error = $reply->error();
		if ($error === null)
		{
			return ['error' => 'CONNECTION_ERROR', 'error_description' => 'Error connecting to authorization server'];
		}
		// bitrix:app.layout reinstalls the app on exactly this pair. isobox
		// sends ERROR_OAUTH itself; builds before that sent a generic
		// request error with the Bitrix text, so the code is restored here.
		if ($error['error_description'] === self::NOT_INSTALLED)
		{
			$error['error'] = 'ERROR_OAUTH';
		}

		return $error;
	}
}
