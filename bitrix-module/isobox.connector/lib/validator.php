<?php
namespace Isobox\Connector;

use Bitrix\Rest\OAuth\Auth;

/**
 * The OnRestCheckAuth handler for tokens isobox issued (registered with sort
 * 90, before the core's \Bitrix\Rest\OAuth\Auth at 100).
 *
 * Only check() is replaced: the core's onRestCheckAuth() still runs every
 * post-check on what check() returns (app active, expiry, scope, makeAuth,
 * app access, status sync) and fills auth_type, parameters_clear and
 * parameters_callback. Tokens without isobox's prefix are not ours: the
 * handler returns null and the core's own validator takes them.
 *
 * Answers are kept in the module's cache for cache_ttl seconds (a few) and
 * NEVER in the core's token storage (Auth::getStorage(), StorageCache), which
 * keeps every answer an hour and would hide a revocation that long.
 */
class Validator extends Auth
{
	/** Cache key prefix; the key carries a hash of the token, never the token. */
	private const ANSWER_KEY_PREFIX = 'tok.';

	public static function onRestCheckAuth(array $query, $scope, &$res)
	{
		$token = static::getAuthKey($query);
		if (!is_string($token) || !Module::config()->isIsoboxToken($token))
		{
			return null;
		}

		return parent::onRestCheckAuth($query, $scope, $res);
	}

	protected static function check($accessToken)
	{
		if (!is_string($accessToken) || !Module::config()->isIsoboxToken($accessToken))
		{
			return parent::check($accessToken);
		}

		$info = static::ask($accessToken);
		if (!isset($info['error']) && !static::userMayAuthorize((int)$info['user_id']))
		{
			return ['error' => 'ACCESS_DENIED', 'error_description' => "Current user can't be authorized in this context"];
		}

		return $info;
	}

	/**
	 * What isobox says about the token, from the cache when it is fresh.
	 * Success is the token info check() must return; a refusal is
	 * {error, error_description, access_token}; neither is stored anywhere
	 * but the module's cache. A transport failure is not cached.
	 */
	public static function ask(string $accessToken): array
	{
		$config = Module::config();
		$cache = Module::cache();
		$key = self::cacheKey($accessToken);

		$cached = $cache->get($key);
		if ($cached !== null)
		{
			return $cached;
		}

		// The method's scope is checked by the core against the answer's
		// scope (with its alternative scopes), so one answer per token
		// serves every method and the cache is keyed by token alone.
		$reply = Module::client()->post($config->authUrl . '/v1/token/validate', [
			'access_token' => $accessToken,
			'scope' => '',
		]);

		if (!$reply->ok() || $reply->json === null)
		{
			Client::log('token check failed: ' . $reply->describe());

			return ['error' => 'CONNECTION_ERROR', 'error_description' => 'Error connecting to authorization server'];
		}

		$error = $reply->error();
		$info = $error !== null
			? $error + ['access_token' => $accessToken]
			: static::tokenInfo($reply->json, $accessToken);

		$cache->set($key, $info, $config->cacheTtl);

		return $info;
	}

	/** Remembers a token isobox just minted, so its first use costs no round trip. */
	public static function remember(array $info): void
	{
		if (isset($info['access_token']) && is_string($info['access_token']))
		{
			Module::cache()->set(self::cacheKey($info['access_token']), $info, Module::config()->cacheTtl);
		}
	}

	/** Forgets a token's cached answer (e.g. after the portal revoked it). */
	public static function forget(string $accessToken): void
	{
		Module::cache()->delete(self::cacheKey($accessToken));
	}

	/**
	 * The validation API's answer as the core's check() result: the fields
	 * OAuth\Auth::onRestCheckAuth and CRestServer read (bitrix-wire §1.2, §1.4).
	 * grpc-gateway sends int64 as JSON strings, so numbers are cast.
	 */
	protected static function tokenInfo(array $answer, string $accessToken): array
	{
		$parameters = static::parameters(is_array($answer['parameters'] ?? null) ? $answer['parameters'] : []);
		$userId = (int)($answer['user_id'] ?? 0);
		if ($userId === 0 && isset($parameters[static::PARAM_LOCAL_USER]))
		{
			$userId = (int)$parameters[static::PARAM_LOCAL_USER];
		}
		// The core moves LOCAL_USER out of the parameters into user_id.
		unset($parameters[static::PARAM_LOCAL_USER]);

		$info = [
			'access_token' => $accessToken,
			'client_id' => (string)($answer['client_id'] ?? ''),
			'user_id' => $userId,
			'scope' => (string)($answer['scope'] ?? ''),
			'expires' => (int)($answer['expires'] ?? 0),
			'parameters' => $parameters,
		];
		// Without a status the core leaves b_rest_app.STATUS alone; with one
		// it rewrites the row, so only a real status is passed on.
		if (!empty($answer['status']))
		{
			$info['status'] = (string)$answer['status'];
		}
		if ($info['client_id'] === '')
		{
			// The core turns a result without client_id into CONNECTION_ERROR.
			unset($info['client_id']);
		}

		return $info;
	}

	/** Token parameters as the core keeps them: the numeric ones as ints. */
	public static function parameters(array $parameters): array
	{
		foreach (['LOCAL_USER', 'TZ_OFFSET', 'EVENT_SESSION'] as $name)
		{
			if (isset($parameters[$name]) && is_string($parameters[$name]) && preg_match('/^-?\d+$/', $parameters[$name]))
			{
				$parameters[$name] = (int)$parameters[$name];
			}
		}

		return $parameters;
	}

	/** B26 refuses users who may not be authorized in a REST context; older cores lack the check. */
	protected static function userMayAuthorize(int $userId): bool
	{
		$checker = '\\Bitrix\\Rest\\Internal\\Access\\UserAccessChecker';
		$context = '\\Bitrix\\Rest\\Internal\\Access\\UserContext';
		if ($userId <= 0 || !class_exists($checker) || !class_exists($context))
		{
			return true;
		}

		return (new $checker(new $context($userId)))->canAuthorize();
	}

	private static function cacheKey(string $accessToken): string
	{
		return self::ANSWER_KEY_PREFIX . hash('sha256', $accessToken);
	}
}
