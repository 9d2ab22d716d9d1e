<?php
namespace Isobox\Connector;

use Bitrix\Main\Config\Option;

/**
 * The module's settings, read once per hit from the module options
 * (defaults in default_option.php) and the portal's own OAuth identity.
 */
final class Config
{
	public function __construct(
		public readonly string $authUrl,
		public readonly string $relayUrl,
		/** @var string[] prefixes of tokens isobox issues (a client may have its own) */
		public readonly array $tokenPrefixes,
		public readonly int $cacheTtl,
		public readonly int $timeout,
		public readonly int $relayBackoff,
		public readonly int $spoolBatch,
		/** @var string[] empty = every app */
		public readonly array $apps,
		public readonly bool $webhooks,
		public readonly string $clientId,
		public readonly string $clientSecret,
	)
	{
	}

	public static function load(): self
	{
		$get = static fn(string $name): string => trim((string)Option::get(Module::ID, $name));

		// The portal registered itself with isobox (/oauth/register/) and
		// keeps the answer in the rest module's options; the module options
		// may override them (e.g. a second isobox for one portal).
		$clientId = $get('client_id');
		$clientSecret = $get('client_secret');
		if ($clientId === '')
		{
			$clientId = (string)Option::get('rest', 'service_client_id', '');
			$clientSecret = (string)Option::get('rest', 'service_client_secret', '');
		}

		return new self(
			rtrim($get('auth_url'), '/'),
			rtrim($get('relay_url'), '/'),
			self::parseList($get('token_prefix')),
			max(0, (int)$get('cache_ttl')),
			max(1, (int)$get('timeout')),
			max(0, (int)$get('relay_backoff')),
			max(1, (int)$get('spool_batch')),
			self::parseList($get('apps')),
			$get('webhooks') !== 'N',
			$clientId,
			$clientSecret,
		);
	}

	/** @return string[] */
	public static function parseList(string $value): array
	{
		return array_values(array_unique(array_filter(preg_split('/[\s,;]+/', $value) ?: [], 'strlen')));
	}

	/** A token isobox issued: it carries one of isobox's prefixes. */
	public function isIsoboxToken(string $token): bool
	{
		foreach ($this->tokenPrefixes as $prefix)
		{
			if (str_starts_with($token, $prefix))
			{
				return true;
			}
		}

		return false;
	}

	/** Whether tokens and codes for this app are minted by isobox. */
	public function routesApp(?string $clientId): bool
	{
		if ($clientId === null || $clientId === '')
		{
			return false;
		}

		return $this->apps === [] || in_array($clientId, $this->apps, true);
	}

	/** Whether an event queue item (app or outgoing webhook) goes to the relay. */
	public function routesEvent(?string $clientId): bool
	{
		if ($clientId === null || $clientId === '')
		{
			return $this->webhooks;
		}

		return $this->routesApp($clientId);
	}

	/** The Authorization header value both isobox services expect. */
	public function bearer(): string
	{
		return 'Bearer ' . $this->clientId . ':' . $this->clientSecret;
	}
}
