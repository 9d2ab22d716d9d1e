<?php
namespace Isobox\Tests\Unit;

use Bitrix\Main\Application;
use Bitrix\Rest\Event\Sender;
use Bitrix\Rest\OAuthService;
use Isobox\Connector\EventProvider;
use Isobox\Connector\Module;
use Isobox\Tests\Portal;

final class EventProviderTest extends PortalTestCase
{
	/** A b_rest_event row of the test app (APP_ID 1) or of an outgoing webhook. */
	private static function handler(int $id, string $url, string $event = 'ONCRMDEALADD', ?int $appId = 1): array
	{
		return [
			'ID' => $id,
			'APP_ID' => $appId,
			'EVENT_NAME' => $event,
			'EVENT_HANDLER' => $url,
			'USER_ID' => 0,
			'APPLICATION_TOKEN' => $appId === null ? 'webhooktoken' : '',
		];
	}

	/** One portal hit that fires events: Sender::call, then the background job. */
	private function fire(array $handlers, int $user = 5): void
	{
		Portal::newHit();
		$GLOBALS['USER']->Authorize($user);
		$list = [];
		foreach ($handlers as $i => $handler)
		{
			$list[] = [$handler, ['FIELDS' => ['ID' => $i + 1]], []];
		}
		Sender::call($list);
		Application::getInstance()->runBackgroundJobs();
	}

	private function relay(string $state): void
	{
		self::$isobox->change(static function (array $s) use ($state): array {
			$s['relay'] = $state;

			return $s;
		});
	}

	public function testTheHitsEventsGoToTheRelayInOneCall(): void
	{
		$this->fire([
			self::handler(11, 'https://app.test/a'),
			self::handler(12, 'https://app.test/b', 'ONCRMDEALUPDATE'),
			self::handler(13, 'https://hook.test/h', 'ONCRMDEALADD', null),
		]);

		$this->assertInstanceOf(EventProvider::class, Sender::getProvider());
		$this->assertSame(1, self::$isobox->calls('/v1/events'), 'one ingest call per hit');
		$events = self::$isobox->state()['events'];
		$this->assertCount(3, $events);
		$this->assertSame([self::APP, self::APP, null], array_column($events, 'client_id'));

		$first = $events[0];
		$this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $first['id']);
		$this->assertCount(3, array_unique(array_column($events, 'id')));
		$this->assertSame(['category' => 'default', 'sendAuth' => true, 'sendRefreshToken' => false], $first['additional']);
		$this->assertSame(['EVENT_SESSION' => 7, 'LOCAL_USER' => 5, 'application_token' => 'apptoken-1'], $first['auth']);
		$this->assertSame('portal.test', $first['query']['DOMAIN']);
		$this->assertSame('https://app.test/a', $first['query']['QUERY_URL']);
		$this->assertSame('ONCRMDEALADD', $first['query']['QUERY_DATA']['event']);
		$this->assertSame(11, $first['query']['QUERY_DATA']['event_handler_id']);
		$this->assertSame(['FIELDS' => ['ID' => 1]], $first['query']['QUERY_DATA']['data']);
		$this->assertSame('webhooktoken', $events[2]['auth']['application_token']);

		$this->assertSame(0, self::$isobox->calls('/v1/token/mint'), 'the relay builds auth at delivery, not the portal');
		$this->assertSame([], array_filter(array_column(OAuthService::$cloudCalls, 0), static fn($m) => $m === 'rest.event.call'));
		$this->assertSame(0, Module::spool()->count());
	}

	public function testWithTheRelayDownNothingIsLostAndTheAgentDeliversInOrder(): void
	{
		Portal::configure(['relay_backoff' => 30, 'spool_batch' => 2]);
		$this->relay('down');

		$this->fire([self::handler(21, 'https://app.test/1'), self::handler(22, 'https://app.test/2')]);
		$this->assertSame(2, Module::spool()->count());
		$this->assertSame(1, self::$isobox->calls('/v1/events'));
		$spooledIds = array_column(Module::spool()->head(10), 'id');

		// Within the backoff the next hit does not wait for the dead relay.
		$this->fire([self::handler(23, 'https://app.test/3')]);
		$this->assertSame(1, self::$isobox->calls('/v1/events'), 'a hit waited for a relay known to be down');
		$this->assertSame(3, Module::spool()->count());

		// The agent retries regardless of the backoff; the relay is still down.
		\CAgent::runAll();
		$this->assertSame(3, Module::spool()->count());
		$this->assertSame(1, (int)Application::getConnection()->query('SELECT MIN(ATTEMPTS) AS A FROM b_isobox_connector_spool WHERE ID = (SELECT MIN(ID) FROM b_isobox_connector_spool)')->fetch()['A']);

		$this->relay('up');
		Portal::newHit();
		\CAgent::runAll();
		$this->assertSame(0, Module::spool()->count());
		$events = self::$isobox->state()['events'];
		$this->assertSame(['https://app.test/1', 'https://app.test/2', 'https://app.test/3'], array_map(static fn($e) => $e['query']['QUERY_URL'], $events));
		$this->assertSame($spooledIds, array_slice(array_column($events, 'id'), 0, 2), 'ids changed in the spool');
		$this->assertSame([2, 1], array_slice(self::$isobox->state()['batches'], -2), 'spool_batch not honoured');
		$this->assertSame(['\Isobox\Connector\Relay::agent();'], array_column(Portal::snapshot()['b_agent'], 'NAME'), 'the agent must stay scheduled');
	}

	public function testNewEventsQueueBehindSpooledOnes(): void
	{
		Portal::configure(['relay_backoff' => 10]);
		$this->relay('down');
		$this->fire([self::handler(31, 'https://app.test/old')]);
		$this->assertSame(1, Module::spool()->count());

		$this->relay('up');
		Portal::$now += 11;
		$this->fire([self::handler(32, 'https://app.test/new')]);
		$this->assertSame(0, Module::spool()->count());
		$this->assertSame(['https://app.test/old', 'https://app.test/new'], array_map(static fn($e) => $e['query']['QUERY_URL'], self::$isobox->state()['events']));
	}

	public function testARelayThatAnswersWithAnErrorIsTreatedAsDown(): void
	{
		Portal::configure(['client_secret' => 'wrong', 'client_id' => 'bx.portal']);
		$this->fire([self::handler(41, 'https://app.test/x')]);
		$this->assertSame(1, Module::spool()->count(), 'a 401 from the relay lost the event');
	}

	public function testAnItemTheRelayRefusesIsSetAsideWithoutHoldingBackTheOthers(): void
	{
		$this->fire([self::handler(71, 'https://app.test/1'), self::handler(72, 'https://app.test/malformed'), self::handler(73, 'https://app.test/3')]);
		$this->assertSame(3, Module::spool()->count(), 'a refused batch was lost');

		// The relay is up: the next hit is not made to wait or skip it.
		$this->fire([self::handler(74, 'https://app.test/4')]);
		$this->assertSame(0, Module::spool()->count());
		$this->assertSame(1, Module::spool()->refusedCount());
		$this->assertSame(
			['https://app.test/1', 'https://app.test/3', 'https://app.test/4'],
			array_map(static fn($e) => $e['query']['QUERY_URL'], self::$isobox->state()['events'])
		);
	}

	public function testUninstallFirstHandsWaitingEventsToTheRelay(): void
	{
		$this->relay('down');
		$this->fire([self::handler(81, 'https://app.test/last')]);
		$this->assertSame(1, Module::spool()->count());
		$this->relay('up');

		$this->assertTrue(\CModule::CreateModuleObject('isobox.connector')->DoUninstall());
		$this->assertSame(['https://app.test/last'], array_map(static fn($e) => $e['query']['QUERY_URL'], self::$isobox->state()['events']));
		$this->assertFalse(Application::getConnection()->isTableExists('b_isobox_connector_spool'));
	}

	public function testAnUnreachableRelaySpools(): void
	{
		Portal::configure(['relay_url' => 'http://127.0.0.1:1']);
		$this->fire([self::handler(51, 'https://app.test/x')]);
		$this->assertSame(1, Module::spool()->count());
	}

	public function testEventsOfAppsNotRoutedGoToTheCoreProvider(): void
	{
		Portal::configure(['apps' => 'local.other', 'webhooks' => 'N']);
		$this->fire([self::handler(61, 'https://app.test/x'), self::handler(62, 'https://hook.test/y', 'ONCRMDEALADD', null)]);
		$this->assertSame(0, self::$isobox->calls('/v1/events'));
		$cloud = array_values(array_filter(OAuthService::$cloudCalls, static fn($c) => $c[0] === 'rest.event.call'));
		$this->assertCount(1, $cloud);
		$this->assertCount(2, $cloud[0][1][0]);
	}

	public function testASpooledItemKeepsTheIdItCameWith(): void
	{
		$this->relay('down');
		Portal::newHit();
		EventProvider::instance()->send([['id' => 'fixed-id', 'client_id' => self::APP, 'additional' => [], 'auth' => [], 'query' => ['QUERY_URL' => 'https://app.test/z']]]);
		$this->assertSame(['fixed-id'], array_column(Module::spool()->head(5), 'id'));
	}
}
