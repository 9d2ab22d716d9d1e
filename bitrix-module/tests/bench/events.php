<?php
// Measures what a portal hit that fires ISOBOX_BENCH_EVENTS events spends
// handing them over, ISOBOX_BENCH_N hits: "module" = Sender::call and the
// background job with the module's provider (one ingest call to the real
// eventrelay per hit); "direct" = the baseline of the handbook's demo
// provider, one HttpClient POST per handler straight to the handler.
// Prints {"n": N, "ns": total}. Run by BenchmarkModuleEventSend in
// internal/e2e (make bench).
use Bitrix\Main\Application;
use Bitrix\Main\Web\HttpClient;
use Bitrix\Rest\Event\Sender;
use Isobox\Tests\Portal;

require __DIR__ . '/../bitrix/main.php';
require __DIR__ . '/../bitrix/global.php';
require __DIR__ . '/../bitrix/rest.php';
require __DIR__ . '/../bitrix/portal.php';

$env = static function (string $name): string {
	$value = getenv($name);
	if ($value === false || $value === '')
	{
		fwrite(STDERR, "$name is not set\n");
		exit(2);
	}

	return $value;
};

$n = max(1, (int)$env('ISOBOX_BENCH_N'));
$events = max(1, (int)$env('ISOBOX_BENCH_EVENTS'));
$direct = getenv('ISOBOX_BENCH_MODE') === 'direct';
Portal::boot(':memory:');
Portal::install();
Portal::configure([
	'auth_url' => $env('ISOBOX_E2E_AUTH_URL'),
	'relay_url' => $env('ISOBOX_E2E_RELAY_URL'),
], $env('ISOBOX_E2E_PORTAL_ID'), $env('ISOBOX_E2E_PORTAL_SECRET'));
Portal::addApp($env('ISOBOX_E2E_APP'), 'crm,user');

$list = [];
for ($i = 0; $i < $events; $i++)
{
	$list[] = [['ID' => 200 + $i, 'APP_ID' => 1, 'EVENT_NAME' => 'ONCRMDEALUPDATE', 'EVENT_HANDLER' => $env('ISOBOX_E2E_HANDLER') . '/h' . $i, 'USER_ID' => 0, 'APPLICATION_TOKEN' => ''], ['FIELDS' => ['ID' => $i]], []];
}

$start = hrtime(true);
for ($hit = 0; $hit < $n; $hit++)
{
	Portal::newHit();
	$GLOBALS['USER']->Authorize(5);
	if ($direct)
	{
		foreach ($list as [$handler, $data])
		{
			$http = new HttpClient(['socketTimeout' => 2, 'streamTimeout' => 2]);
			if ($http->post($handler['EVENT_HANDLER'], ['event' => $handler['EVENT_NAME'], 'data' => $data, 'ts' => time()]) === false)
			{
				fwrite(STDERR, "handler unreachable\n");
				exit(1);
			}
		}
		continue;
	}
	Sender::call($list);
	Application::getInstance()->runBackgroundJobs();
}
$ns = hrtime(true) - $start;
if (!$direct && \Isobox\Connector\Module::spool()->count() > 0)
{
	fwrite(STDERR, "events were spooled: the relay did not take them\n");
	exit(1);
}
echo json_encode(['n' => $n, 'ns' => $ns]), "\n";
