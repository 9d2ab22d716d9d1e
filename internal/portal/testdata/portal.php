<?php
/**
 * A stand-in for the Bitrix24 box's side of the portal <-> OAuth-server
 * protocol, run by the real php CLI against a running authprovider. It
 * makes the calls the way the `rest` module does (restated from
 * \Bitrix\Rest\OAuthService::register(), \Bitrix\Rest\OAuth\Client::call(),
 * \Bitrix\Rest\OAuth\Provider, \Bitrix\Rest\OAuth\Auth::check() and
 * \Bitrix\Rest\AppTable::onAfterAdd(); see docs and bitrix-wire.md §1, §3),
 * and plays a REST app exchanging a code and refreshing at /oauth/token/.
 *
 *   php portal.php flow OAUTH_URL PORTAL_URL LICENSE_KEY [HANDLER_URL]
 *       register, application.add, rest.authorize, rest.check, rest.code,
 *       /oauth/token/ code exchange and refresh, rest.check of the new
 *       token, rest.event.call (to handlers under HANDLER_URL, default
 *       https://app.box.local); prints a JSON state on stdout.
 *   php portal.php expect-revoked OAUTH_URL PORTAL_URL CLIENT_ID CLIENT_SECRET TOKEN
 *       rest.check until the token is refused (up to 5 s); prints the error.
 *   php portal.php reregister OAUTH_URL PORTAL_URL LICENSE_KEY APP_CLIENT_ID
 *       a portal that lost its options (rest/service_client_id empty)
 *       registers again, then opens the app (rest.authorize); prints
 *       {"registered": bool, "error": …, "portal_client_id": …, "access_token": …}.
 *
 * Exit status 0 on success; on failure a message on stderr and status 1.
 */

function fail(string $msg): void
{
	fwrite(STDERR, "portal.php: " . $msg . "\n");
	exit(1);
}

function check(bool $cond, string $msg, $data = null): void
{
	if (!$cond)
	{
		fail($msg . ($data !== null ? ': ' . json_encode($data) : ''));
	}
}

/** HttpClient::post($url, array) as the portal sends it: http_build_query body. */
function http_post(string $url, array $params): array
{
	$ch = curl_init($url);
	curl_setopt_array($ch, [
		CURLOPT_POST => true,
		CURLOPT_POSTFIELDS => http_build_query($params),
		CURLOPT_RETURNTRANSFER => true,
		CURLOPT_TIMEOUT => 15,
		CURLOPT_HTTPHEADER => ['Content-Type: application/x-www-form-urlencoded'],
	]);
	$body = curl_exec($ch);
	$status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
	curl_close($ch);
	if ($body === false)
	{
		fail("POST $url failed");
	}
	return [$status, $body];
}

function http_get(string $url): array
{
	$ch = curl_init($url);
	curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 15]);
	$body = curl_exec($ch);
	$status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
	curl_close($ch);
	return [$status, $body];
}

/** CRestUtil::signLicenseRequest for a box without the bitrix24 module. */
function sign_license_request(array $request, string $licenseKey): array
{
	$request['BX_TYPE'] = 'CP';
	$request['BX_LICENCE'] = md5("BITRIX" . $licenseKey . "LICENCE");
	$request['BX_HASH'] = md5(md5(implode("|", $request)) . md5($licenseKey));
	return $request;
}

/** The portal's identity: options rest/service_client_id and service_client_secret. */
class Engine
{
	public $clientId = false;
	public $clientSecret = false;

	public function __construct(public string $oauthUrl, public string $portalUrl, public string $licenseKey)
	{
	}

	public function isRegistered(): bool
	{
		return $this->clientId !== false;
	}

	/** CRestUtil::getMemberId(): md5 of the client id, or null. */
	public function memberId(): ?string
	{
		return $this->isRegistered() ? md5($this->clientId) : null;
	}

	/** OAuthService::register(). */
	public function register(): void
	{
		$query = ['redirect_uri' => $this->portalUrl, 'type' => 'B'];
		if ($this->memberId() !== null)
		{
			$query['member_id'] = $this->memberId();
		}
		$query = sign_license_request($query, $this->licenseKey);
		[, $body] = http_post($this->oauthUrl . '/oauth/register/', $query);
		$result = json_decode($body, true);
		if (!is_array($result))
		{
			$result = ['error' => 'Wrong answer from service: ' . $body];
		}
		if (!empty($result['error']))
		{
			throw new RuntimeException($result['error']);
		}
		$this->clientId = $result['client_id'];
		$this->clientSecret = $result['client_secret'];
	}
}

/** \Bitrix\Rest\OAuth\Client. */
class Client
{
	public function __construct(private Engine $engine)
	{
	}

	private function prepareRequest(?array $params, bool $licenseCheck): array
	{
		$params = is_array($params) ? $params : [];
		$params['client_id'] = $this->engine->clientId;
		$params['client_secret'] = $this->engine->clientSecret;
		$params['client_redirect_uri'] = $this->engine->portalUrl;
		$params['member_id'] = $this->engine->memberId();
		if ($licenseCheck)
		{
			$params = sign_license_request($params, $this->engine->licenseKey);
		}
		return $params;
	}

	/** Client::getRequestId(): "/?bx24_request_id=…" when the hit has an id. */
	private function requestId(string $method): string
	{
		if (!isset($_SERVER['BX24_REQUEST_ID']))
		{
			return '';
		}
		$sep = str_contains($method, '?') ? '&' : '/?';
		return $sep . http_build_query(['bx24_request_id' => urlencode($_SERVER['BX24_REQUEST_ID'])]);
	}

	public function call(string $method, ?array $params = null, bool $licenseCheck = false)
	{
		if (!$this->engine->clientId || !$this->engine->clientSecret)
		{
			throw new RuntimeException('No client credentials');
		}
		$params = $this->prepareRequest($params, $licenseCheck);
		[, $body] = http_post($this->engine->oauthUrl . '/rest/' . $method . $this->requestId($method), $params);
		$response = json_decode($body, true);
		if ($response)
		{
			if (!$licenseCheck && is_array($response) && isset($response['error']) && $response['error'] === 'verification_needed')
			{
				return $this->call($method, $params, true);
			}
		}
		else
		{
			fwrite(STDERR, "Strange answer from Bitrix Service! $method: $body\n");
		}
		return $response;
	}

	public function addApplication(array $s) { return $this->call('application.add', ['TITLE' => $s['TITLE'], 'REDIRECT_URI' => $s['REDIRECT_URI'], 'SCOPE' => $s['SCOPE']]); }
	public function getAuth($clientId, $scope, array $p = []) { return $this->call('rest.authorize', ['CLIENT_ID' => $clientId, 'SCOPE' => $scope, 'PARAMS' => $p]); }
	public function checkAuth($token) { return $this->call('rest.check', ['TOKEN' => $token]); }
	public function getCode($clientId, $state, $p) { return $this->call('rest.code', ['CLIENT_ID' => $clientId, 'STATE' => $state, 'PARAMS' => $p]); }
	public function sendEvent(array $items) { return $this->call('rest.event.call', ['QUERY' => $items]); }
}

/** Provider::getTokenParams: LOCAL_USER, TZ_OFFSET, EVENT_SESSION. */
function token_params(array $additional, int $userId): array
{
	$additional['LOCAL_USER'] = $userId;
	$additional['TZ_OFFSET'] = 10800;
	$additional['EVENT_SESSION'] = 7;
	return $additional;
}

/** Auth::check() on a cache miss: the rest.check answer as $res. */
function auth_check(Client $client, string $token): array
{
	$info = $client->checkAuth($token);
	check(is_array($info), 'rest.check: no JSON');
	if (isset($info['result']))
	{
		$res = $info['result'];
		$res['user_id'] = $res['parameters']['LOCAL_USER'];
		unset($res['parameters']['LOCAL_USER']);
		if (!isset($res['expires']) && isset($res['expires_in']))
		{
			$res['expires'] = time() + $res['expires_in'];
		}
		return $res;
	}
	$info['access_token'] = $token;
	return $info;
}

function flow(string $oauthUrl, string $portalUrl, string $licenseKey, string $handlerUrl): void
{
	// As on a hit that carries a request id: every call's URL gets "/?bx24_request_id=…".
	$_SERVER['BX24_REQUEST_ID'] = 'req-' . getmypid();
	$engine = new Engine($oauthUrl, $portalUrl, $licenseKey);
	$engine->register();
	check(preg_match('/^bx\.[0-9a-f]{13}[0-9]\.[0-9]{8}$/', $engine->clientId) === 1, 'portal client_id shape', $engine->clientId);
	$client = new Client($engine);

	// AppTable::onAfterAdd for a local app.
	$add = $client->addApplication(['TITLE' => 'Deal sync', 'REDIRECT_URI' => 'https://app.box.local/handler/', 'SCOPE' => 'crm,user']);
	check(isset($add['result']['client_id']), 'application.add', $add);
	$app = [
		'CLIENT_ID' => $add['result']['client_id'],
		'CLIENT_SECRET' => $add['result']['client_secret'],
		'SHARED_KEY' => md5($engine->memberId() . $add['result']['client_secret']),
		'SCOPE' => 'crm,user',
	];
	check(preg_match('/^local\.[0-9a-f]{13}[0-9]\.[0-9]{8}$/', $app['CLIENT_ID']) === 1, 'local app client_id shape', $app);
	check(strlen($app['CLIENT_SECRET']) === 50 && ctype_alnum($app['CLIENT_SECRET']), 'client_secret: 50 alphanumerics', $app);

	// Provider::get(): app.layout opening the app for user 5.
	$auth = $client->getAuth($app['CLIENT_ID'], $app['SCOPE'], token_params([], 5));
	check(!empty($auth['result']['access_token']), 'rest.authorize', $auth);
	$r = $auth['result'];
	foreach (['refresh_token', 'expires', 'expires_in', 'scope', 'domain', 'server_endpoint', 'status', 'client_endpoint', 'member_id'] as $k)
	{
		check(array_key_exists($k, $r), "rest.authorize: $k", $r);
	}
	check($r['status'] === 'L' && $r['member_id'] === $engine->memberId() && $r['expires_in'] > 0, 'rest.authorize fields', $r);

	// Auth::check(): a REST call with that token.
	$res = auth_check($client, $r['access_token']);
	check(!isset($res['error']), 'rest.check', $res);
	check($res['client_id'] === $app['CLIENT_ID'] && (int)$res['user_id'] === 5 && $res['expires'] > time(), 'rest.check result', $res);
	check((string)$res['parameters']['TZ_OFFSET'] === '10800' && (string)$res['parameters']['EVENT_SESSION'] === '7', 'rest.check parameters', $res);
	check($res['status'] === 'L', 'rest.check status', $res);

	// Provider::authorizeClient(): the /oauth/authorize/ page.
	$code = $client->getCode($app['CLIENT_ID'], 'xyz', token_params([], 5));
	check(!empty($code['result']['code']), 'rest.code', $code);
	check($code['result']['state'] === 'xyz' && $code['result']['redirect_uri'] === 'https://app.box.local/handler/', 'rest.code fields', $code);

	// The app exchanges the code (GET, as documented) ...
	[$st, $body] = http_get($oauthUrl . '/oauth/token/?' . http_build_query([
		'grant_type' => 'authorization_code', 'client_id' => $app['CLIENT_ID'], 'client_secret' => $app['CLIENT_SECRET'], 'code' => $code['result']['code'],
	]));
	$tok = json_decode($body, true);
	check($st === 200 && !empty($tok['access_token']) && !empty($tok['refresh_token']), "code exchange ($st)", $tok);
	check($tok['member_id'] === $engine->memberId(), 'code exchange member_id', $tok);

	// ... and refreshes it (POST, as CRest does).
	[$st, $body] = http_post($oauthUrl . '/oauth/token/', [
		'client_id' => $app['CLIENT_ID'], 'grant_type' => 'refresh_token', 'client_secret' => $app['CLIENT_SECRET'], 'refresh_token' => $tok['refresh_token'],
	]);
	$ref = json_decode($body, true);
	check($st === 200 && !empty($ref['access_token']) && $ref['access_token'] !== $tok['access_token'], "refresh ($st)", $ref);

	$res = auth_check($client, $ref['access_token']);
	check(!isset($res['error']) && (int)$res['user_id'] === 5 && $res['client_id'] === $app['CLIENT_ID'], 'rest.check of the refreshed token', $res);

	// Sender::call() + ProviderOAuth::send(): one hit's queue.
	$items = [[
		'client_id' => $app['CLIENT_ID'],
		'additional' => ['category' => 'default', 'sendAuth' => true, 'sendRefreshToken' => false],
		'auth' => ['EVENT_SESSION' => 7, 'LOCAL_USER' => 5, 'application_token' => md5('apptok')],
		'query' => [
			'DOMAIN' => parse_url($portalUrl, PHP_URL_HOST),
			'QUERY_URL' => $handlerUrl . '/handler/',
			'QUERY_DATA' => ['event' => 'ONCRMDEALADD', 'event_handler_id' => 12, 'data' => ['FIELDS' => ['ID' => 42]], 'ts' => 1700000000],
		],
	], [
		'client_id' => null,
		'additional' => ['category' => 'default', 'sendAuth' => true, 'sendRefreshToken' => false],
		'auth' => ['EVENT_SESSION' => 7, 'LOCAL_USER' => 0, 'application_token' => 'webhooktoken0123456789abcdefghij'],
		'query' => [
			'DOMAIN' => parse_url($portalUrl, PHP_URL_HOST),
			'QUERY_URL' => $handlerUrl . '/hook/deal',
			'QUERY_DATA' => ['event' => 'ONCRMDEALUPDATE', 'event_handler_id' => 13, 'data' => ['FIELDS' => ['ID' => 42]], 'ts' => 1700000001],
		],
	]];
	$sent = $client->sendEvent($items);
	check(is_array($sent) && !isset($sent['error']), 'rest.event.call', $sent);

	echo json_encode([
		'portal_client_id' => $engine->clientId,
		'portal_client_secret' => $engine->clientSecret,
		'app_client_id' => $app['CLIENT_ID'],
		'first_access_token' => $r['access_token'],
		'refreshed_access_token' => $ref['access_token'],
		'event_body' => http_build_query(['QUERY' => $items]),
	]), "\n";
}

function expect_revoked(string $oauthUrl, string $portalUrl, string $id, string $secret, string $token): void
{
	$engine = new Engine($oauthUrl, $portalUrl, '');
	$engine->clientId = $id;
	$engine->clientSecret = $secret;
	$client = new Client($engine);
	$deadline = microtime(true) + 5;
	do
	{
		$res = auth_check($client, $token);
		if (isset($res['error']))
		{
			echo json_encode($res), "\n";
			return;
		}
		usleep(20000);
	}
	while (microtime(true) < $deadline);
	fail('token still accepted 5 s after revocation');
}

function reregister(string $oauthUrl, string $portalUrl, string $licenseKey, string $appId): void
{
	$engine = new Engine($oauthUrl, $portalUrl, $licenseKey);
	try
	{
		$engine->register();
	}
	catch (RuntimeException $e)
	{
		echo json_encode(['registered' => false, 'error' => $e->getMessage()]), "\n";
		return;
	}
	$auth = (new Client($engine))->getAuth($appId, 'crm,user', token_params([], 5));
	echo json_encode([
		'registered' => true,
		'portal_client_id' => $engine->clientId,
		'access_token' => $auth['result']['access_token'] ?? null,
		'error' => $auth['error'] ?? null,
	]), "\n";
}

$args = array_slice($argv, 1);
try
{
	switch ($args[0] ?? '')
	{
		case 'flow':
			flow($args[1], $args[2], $args[3], $args[4] ?? 'https://app.box.local');
			break;
		case 'expect-revoked':
			expect_revoked($args[1], $args[2], $args[3], $args[4], $args[5]);
			break;
		case 'reregister':
			reregister($args[1], $args[2], $args[3], $args[4]);
			break;
		default:
			fail('usage: portal.php flow|expect-revoked|reregister ...');
	}
}
catch (Throwable $e)
{
	fail(get_class($e) . ': ' . $e->getMessage());
}
