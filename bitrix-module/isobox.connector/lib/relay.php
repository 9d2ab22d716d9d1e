<?php
namespace Isobox\Connector;

use Isobox\Connector\Cache\Store;

/**
 * Hands event queue items to eventrelay's ingest, in one call per batch,
 * and keeps in the spool whatever the relay did not take.
 *
 * Order: while anything is spooled, new items are appended behind it and the
 * spool is flushed from its head, so an event never overtakes an older one.
 * A failed relay is remembered for relay_backoff seconds, during which hits
 * spool at once instead of each waiting for the timeout; the agent retries.
 */
final class Relay
{
	/** Agent (CAgent NAME) that flushes the spool; returns itself to stay scheduled. */
	public const AGENT = '\\Isobox\\Connector\\Relay::agent();';
	/** Batches per agent run, so one run stays short even after a long outage. */
	public const AGENT_BATCHES = 50;

	private const DOWN_KEY = 'relay.down';

	public function __construct(
		private readonly Config $config,
		private readonly Client $client,
		private readonly Spool $spool,
		private readonly Store $cache,
	)
	{
	}

	/** The agent: flushes the spool. Never throws, so the rest of the agent run goes on. */
	public static function agent(): string
	{
		try
		{
			Module::relay()->flush(self::AGENT_BATCHES);
		}
		catch (\Throwable $e)
		{
			Client::log('spool flush: ' . $e->getMessage());
		}

		return self::AGENT;
	}

	/** Gives each item the stable id the relay deduplicates on, once. */
	public static function withId(array $item): array
	{
		if (!isset($item['id']) || !is_string($item['id']) || $item['id'] === '')
		{
			$item['id'] = self::newId();
		}

		return $item;
	}

	/** Sends the hit's items (already routed to isobox). */
	public function send(array $items): void
	{
		$items = array_values(array_map([self::class, 'withId'], $items));
		if ($items === [])
		{
			return;
		}

		if (!$this->spool->isEmpty())
		{
			$this->spool->add($items);
			if (!$this->isDown())
			{
				$this->flush(1);
			}

			return;
		}

		// An empty spool means no failure is pending (a failure always leaves
		// rows behind), so the relay is asked directly.
		$reply = $this->post($items);
		if ($reply->ok())
		{
			return;
		}
		// A refusal of the content is no outage: the flush sorts it out.
		if (!self::malformed($reply))
		{
			$this->markDown($reply);
		}
		$this->spool->add($items);
	}

	/**
	 * Sends spooled items oldest first, up to $maxBatches batches; stops at
	 * the first refusal. Returns how many items the relay took.
	 */
	public function flush(int $maxBatches): int
	{
		$sent = 0;
		for ($i = 0; $i < $maxBatches; $i++)
		{
			$batch = $this->spool->head($this->config->spoolBatch);
			if ($batch === [])
			{
				break;
			}
			$reply = $this->post(array_values($batch));
			if (self::malformed($reply))
			{
				// The relay is up but refuses this batch as a whole: find the
				// items it refuses one by one, in order, and set only those aside.
				$taken = $this->isolate($batch);
				if ($taken < 0)
				{
					break;
				}
				$sent += $taken;
				continue;
			}
			if (!$reply->ok())
			{
				$this->spool->failed(array_keys($batch));
				$this->markDown($reply);
				break;
			}
			$this->spool->remove(array_keys($batch));
			$sent += count($batch);
			$this->cache->delete(self::DOWN_KEY);
		}

		return $sent;
	}

	/**
	 * Sends a refused batch item by item. Returns how many the relay took,
	 * or -1 if it stopped answering on the way (the rest stays spooled).
	 *
	 * @param array<int, array> $batch spool row ID => item
	 */
	private function isolate(array $batch): int
	{
		$taken = 0;
		foreach ($batch as $rowId => $item)
		{
			$reply = $this->post([$item]);
			if ($reply->ok())
			{
				$this->spool->remove([$rowId]);
				$taken++;
			}
			elseif (self::malformed($reply))
			{
				Client::log('relay refused event ' . ($item['id'] ?? '?') . ' (' . $reply->describe() . '); set aside in the spool');
				$this->spool->refuse([$rowId]);
			}
			else
			{
				$this->spool->failed([$rowId]);
				$this->markDown($reply);

				return -1;
			}
		}

		return $taken;
	}

	/** The relay answered and refuses the content itself (retrying the same body cannot help). */
	private static function malformed(Reply $reply): bool
	{
		return $reply->status === 400 || $reply->status === 413 || $reply->status === 422;
	}

	private function post(array $items): Reply
	{
		return $this->client->post($this->config->relayUrl . '/v1/events', $items);
	}

	private function isDown(): bool
	{
		return $this->cache->get(self::DOWN_KEY) !== null;
	}

	private function markDown(Reply $reply): void
	{
		Client::log('relay refused events (' . $reply->describe() . '), spooled');
		$this->cache->set(self::DOWN_KEY, ['at' => Module::now()], $this->config->relayBackoff);
	}

	private static function newId(): string
	{
		$b = random_bytes(16);
		$b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
		$b[8] = chr((ord($b[8]) & 0x3f) | 0x80);

		return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
	}
}
