<?php
namespace Isobox\Tests\Unit;

use Bitrix\Main\Config\Option;
use Isobox\Tests\Portal;
use Isobox\Tests\StubServer;
use PHPUnit\Framework\TestCase;

/**
 * A freshly installed module on a fresh stand-in portal, talking to the
 * isobox stub (one `php -S` per test class).
 */
abstract class PortalTestCase extends TestCase
{
	protected const PORTAL_ID = 'bx.portal';
	protected const PORTAL_SECRET = 'portal-secret';
	protected const APP = 'local.app1';

	protected static ?StubServer $isobox = null;

	public static function setUpBeforeClass(): void
	{
		self::$isobox = new StubServer(self::PORTAL_ID . ':' . self::PORTAL_SECRET);
	}

	public static function tearDownAfterClass(): void
	{
		self::$isobox?->stop();
		self::$isobox = null;
	}

	protected function setUp(): void
	{
		Portal::boot();
		Portal::install();
		Portal::configure([
			'auth_url' => self::$isobox->url,
			'relay_url' => self::$isobox->url,
			'cache_ttl' => 5,
			'timeout' => 1,
		], self::PORTAL_ID, self::PORTAL_SECRET);
		Portal::addApp(self::APP, 'crm,user');
		self::$isobox->change(static function (array $s): array {
			$s['clients'] = [self::APP];
			$s['tokens'] = (object)[];
			$s['relay'] = 'up';
			$s['events'] = [];
			$s['seen'] = (object)[];
			$s['batches'] = [];
			$s['calls'] = (object)[];
			$s['minted'] = [];

			return $s;
		});
	}

	/** Puts a token into the stub isobox, as if it had issued it. */
	protected function issue(string $token, array $info = []): string
	{
		$info += [
			'client_id' => self::APP,
			'user_id' => 5,
			'scope' => 'crm,user',
			'expires' => Portal::$now + 3600,
			'parameters' => ['LOCAL_USER' => '5', 'TZ_OFFSET' => '10800', 'EVENT_SESSION' => '7', 'application_token' => 'apptoken-1'],
		];
		self::$isobox->change(static function (array $s) use ($token, $info): array {
			$s['tokens'][$token] = $info;

			return $s;
		});

		return $token;
	}

	protected function revoke(string $token): void
	{
		self::$isobox->change(static function (array $s) use ($token): array {
			$s['tokens'][$token]['revoked'] = true;

			return $s;
		});
	}

	protected function option(string $name): string
	{
		return (string)Option::get(Portal::MODULE, $name);
	}
}
