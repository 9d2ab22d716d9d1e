<?php
namespace Isobox\Connector;

use Bitrix\Main\Web\HttpClient;
use Bitrix\Main\Web\Json;

/**
 * JSON over HTTP to isobox, authenticated as the portal
 * (Authorization: Bearer <client_id>:<client_secret>), with a short timeout
 * so a slow isobox never holds a portal worker for long.
 */
class Client
{
	public function __construct(private readonly Config $config)
	{
	}

	/** POST $body as JSON; never throws, a failure is a Reply with status 0. */
	public function post(string $url, mixed $body, ?int $timeout = null): Reply
	{
		$timeout ??= $this->config->timeout;
		$http = new HttpClient([
			'socketTimeout' => $timeout,
			'streamTimeout' => $timeout,
			'redirect' => false,
			// isobox lives on the LAN; a portal-wide http_client_options
			// privateIp=false (against SSRF from user URLs) must not cut it off.
			'privateIp' => true,
		]);
		$http->setHeader('Content-Type', 'application/json');
		$http->setHeader('Accept', 'application/json');
		$http->setHeader('Authorization', $this->config->bearer());

		try
		{
			$payload = Json::encode($body);
		}
		catch (\Throwable $e)
		{
			return new Reply(0, null, 'encode: ' . $e->getMessage());
		}

		$result = $http->post($url, $payload);
		$status = (int)$http->getStatus();
		if ($result === false || $status === 0)
		{
			$errors = $http->getError();

			return new Reply(0, null, is_array($errors) ? implode('; ', $errors) : 'request failed');
		}

		$json = null;
		if ($result !== '')
		{
			$decoded = json_decode($result, true);
			$json = is_array($decoded) ? $decoded : null;
		}

		return new Reply($status, $json);
	}

	/** Writes a line to the portal's log; never a token or a secret. */
	public static function log(string $message): void
	{
		$line = 'isobox.connector: ' . $message;
		if (function_exists('AddMessage2Log'))
		{
			\AddMessage2Log($line, Module::ID);
		}
		else
		{
			error_log($line);
		}
	}
}
