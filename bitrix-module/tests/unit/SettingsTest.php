<?php
namespace Isobox\Tests\Unit;

use Isobox\Tests\Portal;

final class SettingsTest extends PortalTestCase
{
	private function page(array $post = null, string $right = 'W', bool $admin = true): string
	{
		$GLOBALS['APPLICATION']->right = $right;
		$GLOBALS['USER']->Authorize($admin ? 1 : 5);
		$_SERVER['REQUEST_METHOD'] = $post === null ? 'GET' : 'POST';
		$_POST = $post ?? [];
		$_REQUEST = $_POST;
		ob_start();
		try
		{
			(static function () {
				global $APPLICATION;
				include Portal::$root . '/bitrix/modules/isobox.connector/options.php';
			})();
		}
		finally
		{
			$html = ob_get_clean();
		}
		Portal::newHit();

		return $html;
	}

	private function form(array $override = []): array
	{
		return $override + [
			'sessid' => bitrix_sessid(),
			'save' => 'Y',
			'auth_url' => 'http://10.0.0.5:8081/',
			'relay_url' => 'https://relay.lan:8090',
			'client_id' => '',
			'client_secret' => '',
			'token_prefix' => 'isobox.,crm.',
			'cache_ttl' => '3',
			'timeout' => '2',
			'relay_backoff' => '30',
			'spool_batch' => '100',
			'apps' => "local.a, local.b\nlocal.a",
			'webhooks' => 'N',
		];
	}

	public function testThePageShowsEverySettingAndNeverTheSecret(): void
	{
		Portal::configure(['client_secret' => 'top-secret-value']);
		$html = $this->page();
		foreach (['auth_url', 'relay_url', 'client_id', 'client_secret', 'token_prefix', 'cache_ttl', 'timeout', 'relay_backoff', 'spool_batch', 'apps', 'webhooks'] as $field)
		{
			$this->assertStringContainsString('name="' . $field . '"', $html);
		}
		$this->assertStringContainsString('name="sessid"', $html);
		$this->assertStringContainsString('name="check"', $html);
		$this->assertStringContainsString('value="' . self::$isobox->url . '"', $html);
		$this->assertStringNotContainsString('top-secret-value', $html);
	}

	public function testThePageShowsWhatWaitsInTheSpool(): void
	{
		\Isobox\Connector\Module::spool()->add([['id' => 'a'], ['id' => 'b'], ['id' => 'c']]);
		\Isobox\Connector\Module::spool()->refuse([1]);
		$this->assertStringContainsString('Events waiting for eventrelay: 2; set aside as refused: 1.', $this->page());
	}

	public function testSavingNeedsTheSessionTokenAndTheWriteRight(): void
	{
		$html = $this->page($this->form(['sessid' => 'forged']));
		$this->assertStringContainsString('Access denied', $html);
		$this->assertSame(self::$isobox->url, $this->option('auth_url'));

		$html = $this->page($this->form(), 'R');
		$this->assertStringContainsString('Access denied', $html);
		$this->assertSame(self::$isobox->url, $this->option('auth_url'));

		$this->page(null, 'D');
		$this->assertSame(['Access denied: you may not change these settings, or the form has expired (reload the page).'], $GLOBALS['APPLICATION']->authForms);
	}

	public function testSavingStoresCleanValues(): void
	{
		$html = $this->page($this->form(['client_id' => 'bx.override', 'client_secret' => 's3cret']));
		$this->assertStringContainsString('Settings saved.', $html);
		$this->assertSame('http://10.0.0.5:8081', $this->option('auth_url'));
		$this->assertSame('https://relay.lan:8090', $this->option('relay_url'));
		$this->assertSame('3', $this->option('cache_ttl'));
		$this->assertSame("local.a\nlocal.b", $this->option('apps'));
		$this->assertSame('isobox., crm.', $this->option('token_prefix'));
		$this->assertSame('N', $this->option('webhooks'));
		$this->assertSame('s3cret', $this->option('client_secret'));

		// An empty secret field keeps the stored secret; the reset box clears it.
		$this->page($this->form(['client_id' => 'bx.override']));
		$this->assertSame('s3cret', $this->option('client_secret'));
		$this->page($this->form(['client_secret_reset' => 'Y']));
		$this->assertSame('', $this->option('client_secret'));
	}

	public function testABadValueStoresNothing(): void
	{
		$html = $this->page($this->form(['auth_url' => 'ftp://x', 'cache_ttl' => '-1', 'token_prefix' => 'ok., bad/prefix']));
		$this->assertStringContainsString('&quot;authprovider admin address&quot;: enter an http:// or https:// address.', $html);
		$this->assertStringContainsString('Token check cache, seconds', $html);
		$this->assertStringContainsString('&quot;Token prefixes&quot;: each prefix 1 to 32 letters', $html);
		$this->assertStringContainsString('&quot;Token check cache, seconds&quot;: enter a whole number', $html);
		$this->assertStringNotContainsString('Settings saved.', $html);
		$this->assertSame(self::$isobox->url, $this->option('auth_url'));
		$this->assertSame('5', $this->option('cache_ttl'));
		$this->assertStringContainsString('value="ftp://x"', $html, 'what was typed is shown again');
	}

	public function testCheckConnection(): void
	{
		$html = $this->page(['sessid' => bitrix_sessid(), 'check' => 'Y']);
		$this->assertStringContainsString('authprovider (tokens): answers and accepts the portal\'s credentials', $html);
		$this->assertStringContainsString('eventrelay (events): answers and accepts the portal\'s credentials', $html);
		$this->assertSame(1, self::$isobox->calls('/v1/token/validate'));
		$this->assertSame([], self::$isobox->state()['events'] ?? [], 'the check stored an event');

		Portal::configure(['client_id' => 'bx.portal', 'client_secret' => 'wrong']);
		$html = $this->page(['sessid' => bitrix_sessid(), 'check' => 'Y']);
		$this->assertStringContainsString('authprovider (tokens): answers but refuses the portal\'s credentials (HTTP 401 invalid_client)', $html);

		Portal::configure(['auth_url' => 'http://127.0.0.1:1', 'relay_url' => 'http://127.0.0.1:1']);
		$html = $this->page(['sessid' => bitrix_sessid(), 'check' => 'Y']);
		$this->assertStringContainsString('eventrelay (events): does not answer', $html);

		Portal::configure(['client_id' => 'evil', 'client_secret' => 'evil', 'auth_url' => self::$isobox->url]);
		$html = $this->page(['sessid' => bitrix_sessid(), 'check' => 'Y']);
		$this->assertStringContainsString('&lt;script&gt;alert(1)&lt;/script&gt;', $html);
		$this->assertStringNotContainsString('<script>', $html);

		$html = $this->page(['sessid' => 'forged', 'check' => 'Y']);
		$this->assertStringContainsString('Access denied', $html);
	}

	/**
	 * Issue 11, finding 8: a user with the module's right W could point
	 * auth_url (or relay_url) at their own host, and the module would send
	 * the portal's credentials there with the next token check. Now only a
	 * portal administrator moves them, and only while typing the isobox
	 * credentials again (so no stored secret follows the new address).
	 */
	public function testOnlyAnAdministratorWithTheCredentialsMovesTheServiceAddresses(): void
	{
		$stored = ['auth_url' => self::$isobox->url, 'relay_url' => self::$isobox->url];
		$same = ['auth_url' => self::$isobox->url, 'relay_url' => self::$isobox->url];
		$evil = ['auth_url' => 'http://evil.lan:8081', 'client_id' => '', 'client_secret' => ''];

		// Right W, not an administrator: the address stays, with or without credentials.
		$html = $this->page($this->form($evil + $same), 'W', false);
		$this->assertStringContainsString('only a portal administrator may change it', $html);
		$html = $this->page($this->form(['client_id' => 'bx.mine', 'client_secret' => 'mine', 'relay_url' => 'http://evil.lan:8090'] + $same), 'W', false);
		$this->assertStringContainsString('only a portal administrator may change it', $html);
		foreach ($stored as $name => $value)
		{
			$this->assertSame($value, $this->option($name));
		}
		// ... but may change the other settings.
		$html = $this->page($this->form(['cache_ttl' => '7'] + $same), 'W', false);
		$this->assertStringContainsString('Settings saved.', $html);
		$this->assertSame('7', $this->option('cache_ttl'));

		// An administrator must type the credentials again.
		$html = $this->page($this->form($evil + $same));
		$this->assertStringContainsString('enter the isobox client_id and client_secret again', $html);
		$html = $this->page($this->form(['auth_url' => 'http://evil.lan:8081', 'client_id' => 'bx.x', 'client_secret' => ''] + $same));
		$this->assertStringContainsString('enter the isobox client_id and client_secret again', $html);
		$this->assertSame(self::$isobox->url, $this->option('auth_url'));

		$html = $this->page($this->form(['auth_url' => 'http://other.lan:8081', 'client_id' => 'bx.new', 'client_secret' => 'new-secret'] + $same));
		$this->assertStringContainsString('Settings saved.', $html);
		$this->assertSame('http://other.lan:8081', $this->option('auth_url'));
		$this->assertSame('bx.new', $this->option('client_id'));
		$this->assertSame('new-secret', $this->option('client_secret'));
		$config = \Isobox\Connector\Module::config();
		$this->assertSame('Bearer bx.new:new-secret', $config->bearer(), 'the new address gets only the credentials typed with it');
	}
}
