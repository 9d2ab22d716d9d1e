<?php
namespace Isobox\Tests\Unit;

use Bitrix\Rest\AppTable;
use Bitrix\Rest\OAuth\Auth;
use Bitrix\Rest\OAuthService;
use Isobox\Tests\Portal;

final class ValidatorTest extends PortalTestCase
{
	public function testAnIsoboxTokenPassesTheCoreChainWithTheFieldsTheCoreReads(): void
	{
		$token = $this->issue('isobox.valid1');

		$ok = \CRestUtil::checkAuth(['auth' => $token, 'auth_connector' => 'conn1', 'FIELDS' => ['ID' => 1]], 'crm', $res);

		$this->assertTrue($ok, json_encode($res));
		$this->assertSame(self::APP, $res['client_id']);
		$this->assertSame(5, $res['user_id']);
		$this->assertSame('crm,user', $res['scope']);
		$this->assertSame(Portal::$now + 3600, $res['expires']);
		$this->assertSame('L', $res['status']);
		$this->assertSame($token, $res['access_token']);
		// LOCAL_USER becomes user_id; numeric parameters are numbers again.
		$this->assertSame(['TZ_OFFSET' => 10800, 'EVENT_SESSION' => 7, 'application_token' => 'apptoken-1'], $res['parameters']);
		$this->assertSame('oauth', $res['auth_type']);
		$this->assertSame(['auth', 'access_token', 'auth_connector'], $res['parameters_clear']);
		$this->assertSame('conn1', $res['auth_connector']);
		$this->assertSame([Auth::class, 'updateTokenParameters'], $res['parameters_callback']);
		$this->assertSame(5, (int)$GLOBALS['USER']->GetID(), 'makeAuth logged the token user in');
		$this->assertSame([], AppTable::$updates, 'status L matches the app row: nothing rewritten');
		$this->assertSame([], OAuthService::$cloudCalls, 'nothing went to the cloud');
	}

	public function testTheBearerHeaderIsReadFirst(): void
	{
		$token = $this->issue('isobox.header1');
		Portal::newHit(['Authorization' => 'Bearer ' . $token]);

		$this->assertTrue(\CRestUtil::checkAuth([], 'user', $res), json_encode($res));
		$this->assertSame(self::APP, $res['client_id']);
	}

	public function testTheCorePostChecksStillRun(): void
	{
		$cases = [
			'expired_token' => [['expires' => Portal::$now - 1], 'crm'],
			'insufficient_scope' => [['scope' => 'user'], 'crm'],
			'APPLICATION_NOT_FOUND' => [['client_id' => 'local.not-installed'], 'crm'],
			'authorization_error' => [['user_id' => 6, 'parameters' => ['LOCAL_USER' => '6']], 'crm'],
		];
		foreach ($cases as $error => [$info, $scope])
		{
			Portal::newHit();
			$token = $this->issue('isobox.' . $error, $info);
			$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], $scope, $res), $error);
			$this->assertSame($error, $res['error'], json_encode($res));
			$this->assertSame('oauth', $res['auth_type']);
		}
	}

	public function testARevokedOrUnknownTokenIsInvalid(): void
	{
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => 'isobox.unknown'], 'crm', $res));
		$this->assertSame('invalid_token', $res['error']);
		$this->assertSame('The access token provided is invalid', $res['error_description']);
	}

	public function testAnswersAreReusedForTheCacheTimeAndARevocationIsSeenAfterIt(): void
	{
		$token = $this->issue('isobox.cached');
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		$this->assertSame(1, self::$isobox->calls('/v1/token/validate'), 'second hit within the cache time asked isobox again');

		$this->revoke($token);
		Portal::$now += 4;
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res), 'within cache_ttl the cached answer stands');

		Portal::$now += 1;
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res), 'revocation not seen after cache_ttl');
		$this->assertSame('invalid_token', $res['error']);
		$this->assertSame(2, self::$isobox->calls('/v1/token/validate'));
	}

	public function testTheCoresHourLongStorageNeverHoldsAnIsoboxAnswer(): void
	{
		$token = $this->issue('isobox.nostore');
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		$this->assertFalse(Auth::getStorage()->restore($token));

		// The core's parameters_callback (EVENT_SESSION updates) finds nothing to rewrite.
		call_user_func($res['parameters_callback'], ['access_token' => $token, 'parameters' => ['EVENT_SESSION' => 3]]);
		$this->assertFalse(Auth::getStorage()->restore($token));
	}

	public function testCacheTimeZeroAsksEveryTime(): void
	{
		Portal::configure(['cache_ttl' => 0]);
		$token = $this->issue('isobox.nocache');
		for ($i = 0; $i < 3; $i++)
		{
			Portal::newHit();
			$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		}
		$this->assertSame(3, self::$isobox->calls('/v1/token/validate'));
		$this->revoke($token);
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
	}

	public function testOtherTokensAreLeftToTheCore(): void
	{
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => '0534845a0000cd7a0000cd5d00000001000003bc52a2dde6b58915beb0a09fcc57ed36'], 'crm', $res));
		$this->assertSame(0, self::$isobox->calls('/v1/token/validate'));
		$this->assertSame('rest.check', OAuthService::$cloudCalls[0][0] ?? null, 'the core validator took the token');
		$this->assertSame('CONNECTION_ERROR', $res['error']);

		// No token at all: nobody claims the request.
		Portal::newHit();
		$this->assertFalse(\CRestUtil::checkAuth(['sessid' => 'x'], 'crm', $res));
		$this->assertSame('NO_AUTH_FOUND', $res['error']);
	}

	public function testTheTokenPrefixesAreConfigurable(): void
	{
		Portal::configure(['token_prefix' => 'lan-, crm.']);
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $this->issue('lan-abc')], 'crm', $res), json_encode($res));
		Portal::newHit();
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $this->issue('crm.abc')], 'crm', $res), json_encode($res));
		Portal::newHit();
		\CRestUtil::checkAuth(['auth' => 'isobox.abc'], 'crm', $res);
		$this->assertSame(2, self::$isobox->calls('/v1/token/validate'), 'isobox. is not ours any more');
	}

	public function testAnUnreachableIsoboxIsAConnectionErrorAndNotCached(): void
	{
		$token = $this->issue('isobox.down');
		Portal::configure(['auth_url' => 'http://127.0.0.1:1']);
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		$this->assertSame('CONNECTION_ERROR', $res['error']);
		$this->assertNotEmpty($GLOBALS['ISOBOX_TEST_LOG']);
		foreach ($GLOBALS['ISOBOX_TEST_LOG'] as $line)
		{
			$this->assertStringNotContainsString($token, $line, 'a token reached the log');
		}

		Portal::configure(['auth_url' => self::$isobox->url]);
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res), 'the failure was cached');
	}

	public function testRefusedPortalCredentialsAreAConnectionError(): void
	{
		$token = $this->issue('isobox.creds');
		Portal::configure(['client_id' => 'bx.other', 'client_secret' => 'nope']);
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		$this->assertSame('CONNECTION_ERROR', $res['error']);
	}

	/**
	 * Issue 11, finding 8: two portals served by one PHP-FPM share its APCu,
	 * and the answer cache was keyed by the token alone, so portal B got
	 * the answer isobox gave portal A. Each portal now has its own cache.
	 */
	public function testTwoPortalsOnOnePHPDoNotShareAnswers(): void
	{
		$token = $this->issue('isobox.portal-a');
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res));
		$this->assertSame(1, self::$isobox->calls('/v1/token/validate'));

		// The other portal on the same PHP (its own credentials; isobox does
		// not know them, so it must ask and be refused).
		Portal::configure(['client_id' => 'bx.portal-b', 'client_secret' => 'secret-b']);
		$this->assertFalse(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res), 'portal B got portal A\'s cached answer');
		$this->assertSame(2, self::$isobox->calls('/v1/token/validate'));

		// The relay's "down" mark is per portal too.
		Portal::configure(['client_id' => '', 'client_secret' => '']);
		$this->assertTrue(\CRestUtil::checkAuth(['auth' => $token], 'crm', $res), 'portal A lost its own answer');
		$this->assertSame(2, self::$isobox->calls('/v1/token/validate'));
	}
}
