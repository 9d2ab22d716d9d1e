<?php
namespace Isobox\Tests\E2E;

use Bitrix\Main\Application;
use Bitrix\Main\Web\HttpClient;
use Bitrix\Rest\Event\Sender;
use Isobox\Connector\Module;
use Isobox\Tests\Portal;
use PHPUnit\Framework\TestCase;

/**
 * The module on the stand-in portal against the REAL isobox services. Run by
 * internal/e2e/module_test.go, one phase at a time (--filter), with the
 * services' addresses and the portal's and app's credentials in the
 * environment; the Go test checks on its side what arrived. The portal's
 * database is a file, so the spool survives between phases as it survives
 * between hits on a real portal.
 */
final class ModuleE2ETest extends TestCase
{
	private static function env(string $name): string
	{
		$value = getenv($name);
		if ($value === false || $value === '')
		{
			throw new \RuntimeException("$name is not set: this suite is run by internal/e2e/module_test.go");
		}

		return $value;
	}

	/** Notes for the Go side, in the JSON file ISOBOX_E2E_OUT. */
	private static function report(string $key, $value): void
	{
		$file = self::env('ISOBOX_E2E_OUT');
		$all = is_file($file) ? (json_decode((string)file_get_contents($file), true) ?: []) : [];
		$all[$key] = $value;
		file_put_contents($file, json_encode($all));
	}

	protected function setUp(): void
	{
		Portal::boot(self::env('ISOBOX_E2E_PORTAL_DB'));
		Portal::installOnce();
		Portal::configure([
			'auth_url' => self::env('ISOBOX_E2E_AUTH_URL'),
			'relay_url' => self::env('ISOBOX_E2E_RELAY_URL'),
			'cache_ttl' => 2,
			// Generous: the suite shares two cores with every other test.
			'timeout' => 5,
			'relay_backoff' => 30,
		], self::env('ISOBOX_E2E_PORTAL_ID'), self::env('ISOBOX_E2E_PORTAL_SECRET'));
		Portal::addApp(self::env('ISOBOX_E2E_APP'), 'crm,user');
	}

	/** Handlers of one app and one outgoing webhook, both at the Go test's loopback handler. */
	private function fire(string $marker): void
	{
		$url = self::env('ISOBOX_E2E_HANDLER');
		Portal::newHit();
		$GLOBALS['USER']->Authorize(5);
		Sender::call([
			[['ID' => 101, 'APP_ID' => 1, 'EVENT_NAME' => 'ONCRMDEALADD', 'EVENT_HANDLER' => $url . '/app', 'USER_ID' => 0, 'APPLICATION_TOKEN' => ''], ['FIELDS' => ['ID' => $marker]], []],
			[['ID' => 102, 'APP_ID' => null, 'EVENT_NAME' => 'ONCRMDEALADD', 'EVENT_HANDLER' => $url . '/hook', 'USER_ID' => 0, 'APPLICATION_TOKEN' => 'hooktoken0123456789abcdef0123456'], ['FIELDS' => ['ID' => $marker]], []],
		]);
		Application::getInstance()->runBackgroundJobs();
	}

	public function testPhaseAuth(): void
	{
		$app = self::env('ISOBOX_E2E_APP');

		// AuthProvider::get() mints through isobox and returns Bitrix's token structure.
		$auth = \Bitrix\Rest\Application::getAuthProvider()->get($app, 'crm', [], 5);
		$this->assertIsArray($auth);
		$this->assertArrayNotHasKey('error', $auth, json_encode($auth));
		foreach (['access_token', 'refresh_token', 'expires', 'expires_in', 'scope', 'domain', 'server_endpoint', 'client_endpoint', 'member_id', 'status', 'user_id', 'client_id'] as $key)
		{
			$this->assertArrayHasKey($key, $auth);
		}
		$this->assertStringStartsWith('isobox.', $auth['access_token']);
		$this->assertIsInt($auth['expires']);
		$this->assertGreaterThan(time(), $auth['expires']);
		$this->assertIsInt($auth['expires_in']);
		$this->assertSame(5, $auth['user_id']);
		$this->assertSame($app, $auth['client_id']);
		$this->assertSame('L', $auth['status']);
		$this->assertSame(md5(self::env('ISOBOX_E2E_PORTAL_ID')), $auth['member_id']);

		// A REST call with the token passes the core chain with the right $res.
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res), json_encode($res));
		$this->assertSame($app, $res['client_id']);
		$this->assertSame(5, $res['user_id']);
		$this->assertContains('crm', explode(',', $res['scope']));
		$this->assertSame($auth['expires'], $res['expires']);
		$this->assertSame('L', $res['status']);
		$this->assertSame('oauth', $res['auth_type']);
		$this->assertSame(10800, $res['parameters']['TZ_OFFSET'] ?? null, json_encode($res['parameters']));
		$this->assertSame(7, $res['parameters']['EVENT_SESSION'] ?? null);
		$this->assertSame(5, (int)$GLOBALS['USER']->GetID());

		// Asked cold (no primed answer), isobox itself says the same.
		Portal::$cache = null;
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res), json_encode($res));
		$this->assertSame(5, $res['user_id']);
		$this->assertSame(10800, $res['parameters']['TZ_OFFSET'] ?? null, json_encode($res['parameters']));
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'telephony', $res));
		$this->assertSame('insufficient_scope', $res['error']);
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => 'isobox.not-a-token'], 'crm', $res));
		$this->assertSame('invalid_token', $res['error'], json_encode($res));

		// authorizeClient() mints a code.
		Portal::newHit();
		$code = \Bitrix\Rest\Application::getAuthProvider()->authorizeClient($app, 5, 'st8');
		$this->assertIsArray($code);
		$this->assertArrayNotHasKey('error', $code, json_encode($code));
		$this->assertNotEmpty($code['code']);
		$this->assertSame('st8', $code['state'] ?? null);
		foreach (['domain', 'member_id', 'scope', 'redirect_uri'] as $key)
		{
			$this->assertArrayHasKey($key, $code);
		}
		// The app exchanges the code at isobox's /oauth/token/, and the token
		// it gets works on the portal.
		$http = new HttpClient(['socketTimeout' => 5, 'streamTimeout' => 5]);
		$answer = $http->get(self::env('ISOBOX_E2E_OAUTH_URL') . '/oauth/token/?' . http_build_query([
			'grant_type' => 'authorization_code',
			'client_id' => $app,
			'client_secret' => self::env('ISOBOX_E2E_APP_SECRET'),
			'code' => $code['code'],
		]));
		$exchanged = json_decode((string)$answer, true);
		$this->assertSame(200, $http->getStatus(), (string)$answer);
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $exchanged['access_token']], 'user', $res), json_encode($res));
		$this->assertSame(5, $res['user_id']);

		// An app isobox does not know gets the pair bitrix:app.layout reinstalls on.
		Portal::addApp('local.unknown.1', 'crm');
		Portal::newHit();
		$this->assertSame(
			['error' => 'ERROR_OAUTH', 'error_description' => 'Application not installed'],
			\Bitrix\Rest\Application::getAuthProvider()->get('local.unknown.1', 'crm', [], 5)
		);

		self::report('access_token', $auth['access_token']);
	}

	public function testPhaseRevocation(): void
	{
		$app = self::env('ISOBOX_E2E_APP');
		$auth = \Bitrix\Rest\Application::getAuthProvider()->get($app, 'crm', [], 5);
		$this->assertArrayNotHasKey('error', $auth, json_encode($auth));
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res), json_encode($res));

		// The app refreshes its pair at isobox's /oauth/token/: the old access
		// token is revoked there.
		$http = new HttpClient(['socketTimeout' => 5, 'streamTimeout' => 5]);
		$answer = $http->get(self::env('ISOBOX_E2E_OAUTH_URL') . '/oauth/token/?' . http_build_query([
			'grant_type' => 'refresh_token',
			'client_id' => $app,
			'client_secret' => self::env('ISOBOX_E2E_APP_SECRET'),
			'refresh_token' => $auth['refresh_token'],
		]));
		$fresh = json_decode((string)$answer, true);
		$this->assertSame(200, $http->getStatus(), (string)$answer);
		$this->assertNotSame($auth['access_token'], $fresh['access_token']);

		// authprovider learns the revocation from its feed (polled every
		// 250 ms): wait, with a deadline, until isobox itself refuses the
		// token, so what follows measures the module's cache alone.
		$deadline = microtime(true) + 15;
		do
		{
			$reply = Module::client()->post(self::env('ISOBOX_E2E_AUTH_URL') . '/v1/token/validate', ['access_token' => $auth['access_token'], 'scope' => '']);
			$refused = ($reply->json['error'] ?? '') === 'invalid_token';
		}
		while (!$refused && microtime(true) < $deadline && usleep(50000) === null);
		$this->assertTrue($refused, 'isobox never refused the revoked token');

		// Within the cache time the portal still uses its answer ...
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res), 'cached answer expected within cache_ttl');
		// ... and once the cache time has passed the revocation is seen.
		Portal::$now += 2;
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res));
		$this->assertSame('invalid_token', $res['error'], json_encode($res));
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $fresh['access_token']], 'crm', $res), json_encode($res));
	}

	public function testPhaseEvents(): void
	{
		// The settings page's check: both services answer and accept the portal.
		$this->assertSame(['auth' => ['ok', ''], 'relay' => ['ok', '']], \Isobox\Connector\Settings::check());

		$this->fire('live-1');
		$this->assertSame(0, Module::spool()->count(), 'the relay did not take the events: ' . json_encode($GLOBALS['ISOBOX_TEST_LOG']));
	}

	public function testPhaseCallback(): void
	{
		// The app's handler calls the portal back with the token it was
		// delivered: it passes, as the event's user, with the loop guard.
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => self::env('ISOBOX_E2E_DELIVERED_TOKEN')], 'crm', $res), json_encode($res));
		$this->assertSame(self::env('ISOBOX_E2E_APP'), $res['client_id']);
		$this->assertSame(5, $res['user_id']);
		$this->assertSame(7, $res['parameters']['EVENT_SESSION'] ?? null, json_encode($res['parameters']));
	}

	public function testPhaseSpool(): void
	{
		$this->fire('spooled-1');
		$this->fire('spooled-2');
		$this->assertSame(4, Module::spool()->count(), 'events were lost while the relay was down');
	}

	public function testPhaseFlush(): void
	{
		$this->assertSame(4, Module::spool()->count());
		\CAgent::runAll();
		$this->assertSame(0, Module::spool()->count(), json_encode($GLOBALS['ISOBOX_TEST_LOG']));
	}
}
