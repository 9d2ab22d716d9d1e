<?php
// A `php -S` router that answers like isobox's HTTP APIs (shapes of
// api/isobox/token/v1/token.proto through grpc-gateway: int64 as strings),
// for the module's unit tests only. The end-to-end suite runs against the
// real Go services. State is a JSON file named by ISOBOX_STUB_STATE, shared
// with the test, which reads what arrived and switches the relay off and on.

$stateFile = getenv('ISOBOX_STUB_STATE');
$fh = fopen($stateFile, 'c+');
flock($fh, LOCK_EX);
$state = json_decode(stream_get_contents($fh) ?: '{}', true) ?: [];

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$body = json_decode(file_get_contents('php://input'), true);
$auth = $_SERVER['HTTP_AUTHORIZATION'] ?? '';
$state['calls'][$path] = ($state['calls'][$path] ?? 0) + 1;

$reply = static function (int $status, $json) use (&$state, $fh): void {
	ftruncate($fh, 0);
	rewind($fh);
	fwrite($fh, json_encode($state));
	fflush($fh);
	flock($fh, LOCK_UN);
	http_response_code($status);
	header('Content-Type: application/json');
	echo json_encode($json);
};

if ($auth === 'Bearer evil:evil')
{
	// A hostile or broken service: its error code must never reach a page as HTML.
	$reply(401, ['error' => '<script>alert(1)</script>', 'error_description' => 'x']);

	return true;
}
if ($auth !== 'Bearer ' . ($state['bearer'] ?? ''))
{
	$reply(401, ['error' => 'invalid_client', 'error_description' => 'Unknown portal']);

	return true;
}
if (!is_array($body))
{
	$reply(400, ['error' => 'invalid_request', 'error_description' => 'Body is not JSON']);

	return true;
}

switch ($path)
{
	case '/v1/token/validate':
		$token = $state['tokens'][$body['access_token'] ?? ''] ?? null;
		if ($token === null || !empty($token['revoked']))
		{
			$reply(200, ['error' => 'invalid_token', 'error_description' => 'The access token provided is invalid', 'http_status' => 401]);
			break;
		}
		$reply(200, [
			'client_id' => $token['client_id'],
			'user_id' => (string)$token['user_id'],
			'scope' => $token['scope'],
			'expires' => (string)$token['expires'],
			'status' => 'L',
			'parameters' => $token['parameters'],
			'auth_type' => 'oauth',
			'access_token' => $body['access_token'],
			'error' => '',
			'error_description' => '',
			'http_status' => 0,
		]);
		break;

	case '/v1/token/mint':
		if (!in_array($body['client_id'] ?? '', $state['clients'] ?? [], true))
		{
			// As isobox's gateway renders FailedPrecondition.
			$reply(400, ['error' => 'invalid_request', 'error_description' => 'Application not installed']);
			break;
		}
		$state['minted'][] = $body;
		$access = 'isobox.' . bin2hex(random_bytes(16));
		$expires = time() + 3600;
		$state['tokens'][$access] = [
			'client_id' => $body['client_id'], 'user_id' => $body['user_id'], 'scope' => $body['scope'] !== '' ? $body['scope'] : 'crm,user',
			'expires' => $expires, 'parameters' => (object)($body['parameters'] ?? []),
		];
		$reply(200, [
			'access_token' => $access,
			'refresh_token' => 'isobox.' . bin2hex(random_bytes(16)),
			'expires' => (string)$expires,
			'expires_in' => '3600',
			'scope' => $state['tokens'][$access]['scope'],
			'domain' => 'portal.test',
			'server_endpoint' => 'http://isobox.test/rest/',
			'client_endpoint' => 'https://portal.test/rest/',
			'member_id' => md5('bx.portal'),
			'status' => 'L',
			'user_id' => (string)$body['user_id'],
			'client_id' => $body['client_id'],
		]);
		break;

	case '/v1/token/code':
		$state['codes'][] = $body;
		$reply(200, [
			'code' => 'isobox.code.' . bin2hex(random_bytes(8)),
			'domain' => 'isobox.test',
			'member_id' => md5('bx.portal'),
			'scope' => 'crm,user',
			'redirect_uri' => 'https://app.test/install',
			'state' => $body['state'] ?? '',
		]);
		break;

	case '/v1/events':
		if (($state['relay'] ?? 'up') !== 'up')
		{
			$reply(503, ['error' => 'unavailable', 'error_description' => 'relay is down']);
			break;
		}
		foreach ($body as $item)
		{
			if (str_contains((string)($item['query']['QUERY_URL'] ?? ''), 'malformed'))
			{
				$reply(400, ['error' => 'invalid_request', 'error_description' => 'item 0: bad item']);
				break 2;
			}
		}
		$state['batches'][] = count($body);
		foreach ($body as $item)
		{
			$id = $item['id'] ?? '';
			if ($id === '' || !isset($state['seen'][$id]))
			{
				$state['seen'][$id] = true;
				$state['events'][] = $item;
			}
		}
		$reply(202, ['accepted' => count($body)]);
		break;

	default:
		$reply(404, ['error' => 'not_found', 'error_description' => 'No such method']);
}

return true;
