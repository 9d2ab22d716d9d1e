<?php
namespace Isobox\Connector;

use Bitrix\Rest\Event\ProviderInterface;
use Bitrix\Rest\Event\ProviderOAuth;
use Bitrix\Rest\Event\Sender;

/**
 * The event provider: the hit's whole queue list goes to eventrelay in ONE
 * call (never a POST per handler), with a short timeout; what the relay does
 * not take goes to the spool, which an agent flushes. The relay adds the
 * auth block (a fresh token) when it delivers, so the portal does not mint
 * tokens for events here. Items of apps the module does not route go to the
 * core's provider unchanged.
 *
 * Installed per hit by the rest/onEventManagerInitialize handler.
 */
class EventProvider extends ProviderOAuth implements ProviderInterface
{
	/**
	 * Own slot: ProviderOAuth::$instance may already hold the core's provider.
	 *
	 * @var EventProvider|null
	 */
	protected static $instance = null;

	/** rest/onEventManagerInitialize handler. */
	public static function onEventManagerInitialize($event = null): void
	{
		Sender::setProvider(static::instance());
	}

	public function send(array $queryData)
	{
		$config = Module::config();
		$ours = [];
		$others = [];
		foreach ($queryData as $item)
		{
			if (is_array($item) && $config->routesEvent($item['client_id'] ?? null))
			{
				$ours[] = $item;
			}
			else
			{
				$others[] = $item;
			}
		}

		if ($ours !== [])
		{
			try
			{
				Module::relay()->send($ours);
			}
			catch (\Throwable $e)
			{
				// Only the spool's database can fail here; the portal hit must go on.
				Client::log('events not spooled: ' . $e->getMessage());
			}
		}

		if ($others !== [])
		{
			parent::send($others);
		}
	}
}
