<?php
namespace Isobox\Tests\Unit;

use Bitrix\Rest\Application;
use Bitrix\Rest\Event\Sender;
use Bitrix\Rest\OAuth\Auth;
use Bitrix\Rest\OAuth\Provider;
use Bitrix\Rest\OAuthService;
use Isobox\Connector\AuthProvider;
use Isobox\Tests\Portal;

final class AuthProviderTest extends PortalTestCase
{
	public function testTheHandlerInstallsTheProviderOnTheFirstUse(): void
	{
		// The core's provider was built earlier in the process: the module's
		// instance() must still hand out its own class.
		$this->assertInstanceOf(Provider::class, Provider::instance());
		$this->assertInstanceOf(AuthProvider::class, Application::getAuthProvider());
	}

	public function testGetMintsThroughIsoboxAndReturnsTheBitrixTokenStructure(): void
	{
		$auth = Application::getAuthProvider()->get(self::APP, 'crm', ['application_token' => 'apptoken-1'], 5);

		$this->assertIsArray($auth);
		$this->assertArrayNotHasKey('error', $auth, json_encode($auth));
		foreach (['access_token', 'refresh_token', 'expires', 'expires_in', 'scope', 'domain', 'server_endpoint', 'client_endpoint', 'member_id', 'status', 'user_id', 'client_id'] as $key)
		{
			$this->assertArrayHasKey($key, $auth);
		}
		$this->assertStringStartsWith('isobox.', $auth['access_token']);
		$this->assertSame(3600, $auth['expires_in']);
		$this->assertIsInt($auth['expires']);
		$this->assertSame(5, $auth['user_id']);
		$this->assertSame(self::APP, $auth['client_id']);
		$this->assertSame('L', $auth['status']);

		// The mint request carried what the core's provider puts into token parameters.
		$minted = self::$isobox->state()['minted'][0];
		$this->assertSame(['client_id' => self::APP, 'user_id' => 5, 'scope' => 'crm', 'parameters' => [
			'application_token' => 'apptoken-1', 'LOCAL_USER' => '5', 'TZ_OFFSET' => '10800', 'EVENT_SESSION' => '7',
		]], $minted);

		// Not in the core's hour-long storage; primed in the module's short cache:
		// the app's first call with the token costs no round trip.
		$this->assertFalse(Auth::getStorage()->restore($auth['access_token']));
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $auth['access_token']], 'crm', $res), json_encode($res));
		$this->assertSame(5, $res['user_id']);
		$this->assertSame(['application_token' => 'apptoken-1', 'TZ_OFFSET' => 10800, 'EVENT_SESSION' => 7], $res['parameters']);
		$this->assertSame(0, self::$isobox->calls('/v1/token/validate'));
		$this->assertSame([], OAuthService::$cloudCalls);
	}

	public function testGetWithoutAUserIsFalseAsInTheCore(): void
	{
		$this->assertFalse(Application::getAuthProvider()->get(self::APP, 'crm', [], 0));
		$this->assertSame(0, self::$isobox->calls('/v1/token/mint'));
	}

	public function testAnAppIsoboxDoesNotKnowGetsTheErrorAppLayoutUnderstands(): void
	{
		Portal::addApp('local.unknown', 'crm');
		$auth = Application::getAuthProvider()->get('local.unknown', 'crm', [], 5);
		$this->assertSame(['error' => 'ERROR_OAUTH', 'error_description' => 'Application not installed'], $auth);
	}

	public function testAppsNotRoutedThroughIsoboxStayWithTheCore(): void
	{
		Portal::configure(['apps' => "local.other\nlocal.third"]);
		Application::getAuthProvider()->get(self::APP, 'crm', [], 5);
		Application::getAuthProvider()->authorizeClient(self::APP, 5, 'st');
		$this->assertSame(0, self::$isobox->calls('/v1/token/mint'));
		$this->assertSame(0, self::$isobox->calls('/v1/token/code'));
		$this->assertSame(['rest.authorize', 'rest.code'], array_values(array_filter(array_column(OAuthService::$cloudCalls, 0), static fn($m) => $m !== 'register')));
	}

	public function testAuthorizeClientMintsACode(): void
	{
		$code = Application::getAuthProvider()->authorizeClient(self::APP, 5, 'xyz');
		$this->assertSame(['code', 'domain', 'member_id', 'scope', 'redirect_uri', 'state'], array_keys($code));
		$this->assertStringStartsWith('isobox.code.', $code['code']);
		$this->assertSame('xyz', $code['state']);
		$sent = self::$isobox->state()['codes'][0];
		$this->assertSame(['client_id' => self::APP, 'user_id' => 5, 'state' => 'xyz', 'parameters' => ['LOCAL_USER' => '5', 'TZ_OFFSET' => '10800', 'EVENT_SESSION' => '7']], $sent);

		Portal::newHit();
		$this->assertArrayNotHasKey('state', Application::getAuthProvider()->authorizeClient(self::APP, 5), 'an empty state is no state');
		$this->assertFalse(Application::getAuthProvider()->authorizeClient(self::APP, 0));
	}

	public function testSenderGetAuthUsesTheProviderAndDropsTheRefreshToken(): void
	{
		$auth = Sender::getAuth(self::APP, 5, [], ['sendAuth' => true, 'sendRefreshToken' => false]);
		$this->assertStringStartsWith('isobox.', $auth['access_token']);
		$this->assertArrayNotHasKey('refresh_token', $auth);
		$this->assertSame('apptoken-1', $auth['application_token']);
		$this->assertSame('crm,user', self::$isobox->state()['minted'][0]['scope'], 'the app scope is asked for');
	}

	public function testAnUnreachableIsoboxIsAConnectionError(): void
	{
		Portal::configure(['auth_url' => 'http://127.0.0.1:1']);
		$this->assertSame(
			['error' => 'CONNECTION_ERROR', 'error_description' => 'Error connecting to authorization server'],
			Application::getAuthProvider()->get(self::APP, 'crm', [], 5)
		);
	}
}
