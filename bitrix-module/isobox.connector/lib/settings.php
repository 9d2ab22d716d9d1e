<?php
namespace Isobox\Connector;

use Bitrix\Main\Config\Option;

/**
 * What the settings page (options.php) edits: validation of the form and the
 * "check connection" action. Texts live in options.php's language files;
 * this class speaks in field names and status codes.
 */
final class Settings
{
	/** Option name => kind. */
	public const FIELDS = [
		'auth_url' => 'url',
		'relay_url' => 'url',
		'client_id' => 'text',
		'client_secret' => 'secret',
		'token_prefix' => 'prefix',
		'cache_ttl' => 'seconds',
		'timeout' => 'positive',
		'relay_backoff' => 'seconds',
		'spool_batch' => 'positive',
		'apps' => 'list',
		'webhooks' => 'flag',
	];

	/** Current values; the secret is never sent back to the browser. */
	public static function values(): array
	{
		$values = [];
		foreach (self::FIELDS as $name => $kind)
		{
			$values[$name] = $kind === 'secret' ? '' : (string)Option::get(Module::ID, $name);
		}

		return $values;
	}

	/** Whether a client secret is set in the module options. */
	public static function hasSecret(): bool
	{
		return (string)Option::get(Module::ID, 'client_secret') !== '';
	}

	/**
	 * The addresses the module sends the portal's credentials to. Moving one
	 * would hand them to whoever runs the new address, so only a portal
	 * administrator may, and only while typing the credentials again.
	 */
	public const ADDRESSES = ['auth_url', 'relay_url'];

	/**
	 * Validates and stores the posted form. Nothing is stored if any field is
	 * wrong. Returns [field => error code] (empty on success); codes:
	 * url, number, prefix; admin (an address changed by someone who is not a
	 * portal administrator), credentials (an address changed without
	 * client_id and client_secret typed in the same form).
	 */
	public static function save(array $input, bool $isAdmin = false): array
	{
		$clean = [];
		$errors = [];
		foreach (self::FIELDS as $name => $kind)
		{
			$value = isset($input[$name]) && is_scalar($input[$name]) ? trim((string)$input[$name]) : '';
			switch ($kind)
			{
				case 'url':
					$parts = parse_url($value);
					if (!is_array($parts) || !in_array($parts['scheme'] ?? '', ['http', 'https'], true) || empty($parts['host']))
					{
						$errors[$name] = 'url';
					}
					$value = rtrim($value, '/');
					break;
				case 'seconds':
				case 'positive':
					$min = $kind === 'positive' ? 1 : 0;
					if (!preg_match('/^\d{1,9}$/', $value) || (int)$value < $min)
					{
						$errors[$name] = 'number';
					}
					break;
				case 'prefix':
					$prefixes = Config::parseList($value);
					foreach ($prefixes as $prefix)
					{
						if (!preg_match('/^[A-Za-z0-9._-]{1,32}$/', $prefix))
						{
							$errors[$name] = 'prefix';
						}
					}
					if ($prefixes === [])
					{
						$errors[$name] = 'prefix';
					}
					$value = implode(', ', $prefixes);
					break;
				case 'list':
					$value = implode("\n", Config::parseList($value));
					break;
				case 'flag':
					$value = $value === 'Y' ? 'Y' : 'N';
					break;
				case 'secret':
					if ($value === '')
					{
						// An empty field keeps the stored secret (it is never shown);
						// clearing it is the separate "reset" checkbox.
						if (($input['client_secret_reset'] ?? '') !== 'Y')
						{
							continue 2;
						}
					}
					break;
			}
			$clean[$name] = $value;
		}

		foreach (self::ADDRESSES as $name)
		{
			if (isset($errors[$name]) || $clean[$name] === rtrim(trim((string)Option::get(Module::ID, $name)), '/'))
			{
				continue;
			}
			if (!$isAdmin)
			{
				$errors[$name] = 'admin';
			}
			elseif (($clean['client_id'] ?? '') === '' || ($clean['client_secret'] ?? '') === '')
			{
				$errors[$name] = 'credentials';
			}
		}

		if ($errors !== [])
		{
			return $errors;
		}
		foreach ($clean as $name => $value)
		{
			Option::set(Module::ID, $name, $value);
		}
		Module::reset();

		return [];
	}

	/**
	 * Asks both services whether they answer and accept the portal's
	 * credentials. Returns ['auth' => [status, detail], 'relay' => [...]],
	 * status: ok, denied (credentials refused), unreachable, error.
	 */
	public static function check(): array
	{
		$config = Module::config();
		if ($config->clientId === '' || $config->clientSecret === '')
		{
			return ['auth' => ['nocredentials', ''], 'relay' => ['nocredentials', '']];
		}
		$client = Module::client();

		// A token that cannot exist: a working service answers 200 with
		// invalid_token; a wrong portal credential gives 401.
		$auth = $client->post($config->authUrl . '/v1/token/validate', [
			'access_token' => ($config->tokenPrefixes[0] ?? 'isobox.') . 'connection-check',
			'scope' => '',
		]);
		// An empty list stores nothing; it proves the address and the credentials.
		$relay = $client->post($config->relayUrl . '/v1/events', []);

		return [
			'auth' => self::verdict($auth, $auth->ok() && $auth->json !== null),
			'relay' => self::verdict($relay, $relay->ok() || $relay->status === 400),
		];
	}

	private static function verdict(Reply $reply, bool $ok): array
	{
		if ($ok)
		{
			return ['ok', ''];
		}
		if ($reply->status === 0)
		{
			return ['unreachable', $reply->transportError];
		}
		if ($reply->status === 401 || $reply->status === 403)
		{
			return ['denied', $reply->describe()];
		}

		return ['error', $reply->describe()];
	}
}
