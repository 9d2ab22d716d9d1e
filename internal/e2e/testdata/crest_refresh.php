<?php
/**
 * A REST app shaped like Bitrix's CRest: its token endpoint is a constant
 * in the code, https://oauth.bitrix.info/oauth/token/, and it refreshes
 * with a POST of client_id, client_secret, grant_type and refresh_token
 * through curl with peer verification on. Nothing tells it another URL:
 * it reaches isobox only if the LAN's DNS (here the network namespace's
 * hosts file) points oauth.bitrix.info there and the CA is trusted.
 *
 *   CLIENT_ID=... CLIENT_SECRET=... REFRESH_TOKEN=... php crest_refresh.php
 *
 * Prints the token endpoint's JSON answer; exit 1 on a transport error.
 */

final class AppRest
{
	const OAUTH_TOKEN_URL = 'https://oauth.bitrix.info/oauth/token/';

	/** The settings an app keeps between hits (CRest: settings.json). */
	private array $settings;

	public function __construct(array $settings)
	{
		$this->settings = $settings;
	}

	/** Asks the OAuth server for a new pair with the stored refresh token. */
	public function renewAuth(): array
	{
		return $this->post(self::OAUTH_TOKEN_URL, [
			'client_id' => $this->settings['client_id'],
			'grant_type' => 'refresh_token',
			'client_secret' => $this->settings['client_secret'],
			'refresh_token' => $this->settings['refresh_token'],
		]);
	}

	private function post(string $url, array $fields): array
	{
		$ch = curl_init();
		curl_setopt_array($ch, [
			CURLOPT_URL => $url,
			CURLOPT_POST => true,
			CURLOPT_POSTFIELDS => http_build_query($fields),
			CURLOPT_RETURNTRANSFER => true,
			CURLOPT_FOLLOWLOCATION => true,
			CURLOPT_SSL_VERIFYPEER => true,
			CURLOPT_SSL_VERIFYHOST => 2,
			CURLOPT_TIMEOUT => 20,
			CURLOPT_USERAGENT => 'app-rest-php',
		]);
		$body = curl_exec($ch);
		if ($body === false)
		{
			fwrite(STDERR, 'curl: ' . curl_error($ch) . "\n");
			exit(1);
		}
		$decoded = json_decode($body, true);
		return is_array($decoded) ? $decoded : ['error' => 'not_json', 'body' => $body];
	}
}

$app = new AppRest([
	'client_id' => getenv('CLIENT_ID'),
	'client_secret' => getenv('CLIENT_SECRET'),
	'refresh_token' => getenv('REFRESH_TOKEN'),
]);
echo json_encode($app->renewAuth()), "\n";
