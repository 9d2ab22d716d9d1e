<?php
// Measures CRestUtil::checkAuth with an isobox token on the stand-in portal
// against the real authprovider: ISOBOX_BENCH_N hits, each a fresh hit with
// the module's answer cache kept (as APCu keeps it between requests).
// cache_ttl = ISOBOX_BENCH_TTL: 0 is a validation round trip per call, > 0
// the cached path; ISOBOX_BENCH_MODE=core checks a token the core's own
// validator has in its StorageCache instead (the baseline). Prints
// {"n": N, "ns": total}. Run by BenchmarkModuleTokenCheck in internal/e2e
// (make bench).
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
Portal::boot(':memory:');
Portal::install();
Portal::configure([
	'auth_url' => $env('ISOBOX_E2E_AUTH_URL'),
	'cache_ttl' => (int)$env('ISOBOX_BENCH_TTL'),
], $env('ISOBOX_E2E_PORTAL_ID'), $env('ISOBOX_E2E_PORTAL_SECRET'));
Portal::addApp($env('ISOBOX_E2E_APP'), 'crm,user');

$auth = \Bitrix\Rest\Application::getAuthProvider()->get($env('ISOBOX_E2E_APP'), 'crm', [], 5);
if (!is_array($auth) || empty($auth['access_token']))
{
	fwrite(STDERR, 'mint failed: ' . json_encode($auth) . "\n");
	exit(1);
}
// Start cold: no answer primed by the mint.
Portal::$cache = null;
$token = $auth['access_token'];

if (getenv('ISOBOX_BENCH_MODE') === 'core')
{
	// Baseline: a token the core's own validator answers from its StorageCache
	// (what a portal pays today for a token it has cached), same post-checks.
	$token = 'core' . bin2hex(random_bytes(16));
	\Bitrix\Rest\OAuth\Auth::storeRegisteredAuth([
		'access_token' => $token, 'client_id' => $env('ISOBOX_E2E_APP'), 'user_id' => 5,
		'scope' => 'crm,user', 'expires' => time() + 3600, 'status' => 'L', 'parameters' => [],
	]);
}

$start = hrtime(true);
for ($i = 0; $i < $n; $i++)
{
	Portal::newHit();
	if (!\CRestUtil::checkAuth(['auth' => $token], 'crm', $res))
	{
		fwrite(STDERR, 'check failed: ' . json_encode($res) . "\n");
		exit(1);
	}
}
echo json_encode(['n' => $n, 'ns' => hrtime(true) - $start]), "\n";
