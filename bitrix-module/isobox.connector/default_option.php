<?php
// Defaults of the isobox.connector options (Option::get falls back to these).
// Every value is a string, as Bitrix stores options.
$isobox_connector_default_option = [
	// authprovider's admin address: POST /v1/token/validate, /mint, /code.
	'auth_url' => 'http://127.0.0.1:8081',
	// eventrelay's ingest address: POST /v1/events.
	'relay_url' => 'http://127.0.0.1:8090',
	// Tokens that start with this prefix are checked by isobox.
	'token_prefix' => 'isobox.',
	// Seconds a token check answer is reused; a revocation is seen within this time. 0 = ask every time.
	'cache_ttl' => '5',
	// Seconds to wait for isobox (connect and answer), whole seconds as HttpClient takes them.
	'timeout' => '2',
	// Seconds to send events straight to the spool after the relay failed, so hits do not wait on a dead relay.
	'relay_backoff' => '30',
	// Events per ingest call when the spool is flushed.
	'spool_batch' => '100',
	// Empty: every app goes through isobox. Otherwise client_ids separated by commas, spaces or new lines.
	'apps' => '',
	// Y: outgoing webhooks' events go through the relay too.
	'webhooks' => 'Y',
	// Empty: use the portal's own credentials (rest / service_client_id, service_client_secret).
	'client_id' => '',
	'client_secret' => '',
];
