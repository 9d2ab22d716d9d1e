<?php
namespace Isobox\Connector;

use Bitrix\Main\DB\Connection;

/**
 * The durable local queue of events the relay did not take: table
 * b_isobox_connector_spool (install/db/<type>/install.sql), oldest first by
 * its auto-increment ID. Items keep the id they got when they entered the
 * module, so a batch sent twice (two flushes racing, or an answer lost after
 * the relay stored it) is deduplicated by the relay.
 *
 * A row the relay refused as malformed (it would be refused forever) is
 * set aside with ATTEMPTS = -1: kept for the administrator, skipped by the
 * flush, so it does not hold back the events behind it.
 *
 * Plain SQL that MySQL, PostgreSQL and SQLite all run: inserts through
 * Connection::add(), everything else by integer IDs only.
 */
final class Spool
{
	public const TABLE = 'b_isobox_connector_spool';

	/** @var callable */
	private $now;

	public function __construct(private readonly Connection $db, callable $now)
	{
		$this->now = $now;
	}

	/** Appends items in order, all or none. */
	public function add(array $items): void
	{
		if ($items === [])
		{
			return;
		}
		$this->db->startTransaction();
		try
		{
			foreach ($items as $item)
			{
				$this->db->add(self::TABLE, [
					'ITEM_ID' => (string)$item['id'],
					'PAYLOAD' => json_encode($item, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE),
					'CREATED_AT' => (int)($this->now)(),
					'ATTEMPTS' => 0,
				]);
			}
			$this->db->commitTransaction();
		}
		catch (\Throwable $e)
		{
			$this->db->rollbackTransaction();
			throw $e;
		}
	}

	/**
	 * The oldest $limit items.
	 *
	 * @return array<int, array> spool row ID => item
	 */
	public function head(int $limit): array
	{
		$rows = $this->db->query('SELECT ID, PAYLOAD FROM ' . self::TABLE . ' WHERE ATTEMPTS >= 0 ORDER BY ID LIMIT ' . max(1, $limit));
		$items = [];
		while ($row = $rows->fetch())
		{
			$item = json_decode((string)$row['PAYLOAD'], true);
			if (is_array($item))
			{
				$items[(int)$row['ID']] = $item;
			}
			else
			{
				// A row that no longer decodes can never be delivered; drop it
				// rather than block every event behind it.
				Client::log('spool row ' . (int)$row['ID'] . ' is not JSON, dropped');
				$this->remove([(int)$row['ID']]);
			}
		}

		return $items;
	}

	/** @param int[] $ids */
	public function remove(array $ids): void
	{
		if ($ids !== [])
		{
			$this->db->queryExecute('DELETE FROM ' . self::TABLE . ' WHERE ID IN (' . self::idList($ids) . ')');
		}
	}

	/** Counts a failed delivery attempt on these rows. @param int[] $ids */
	public function failed(array $ids): void
	{
		if ($ids !== [])
		{
			$this->db->queryExecute('UPDATE ' . self::TABLE . ' SET ATTEMPTS = ATTEMPTS + 1 WHERE ID IN (' . self::idList($ids) . ')');
		}
	}

	/** Sets rows aside that the relay refused as malformed. @param int[] $ids */
	public function refuse(array $ids): void
	{
		if ($ids !== [])
		{
			$this->db->queryExecute('UPDATE ' . self::TABLE . ' SET ATTEMPTS = -1 WHERE ID IN (' . self::idList($ids) . ')');
		}
	}

	/** Whether nothing waits for delivery. */
	public function isEmpty(): bool
	{
		return !$this->db->query('SELECT ID FROM ' . self::TABLE . ' WHERE ATTEMPTS >= 0 ORDER BY ID LIMIT 1')->fetch();
	}

	/** Items waiting for delivery. */
	public function count(): int
	{
		$row = $this->db->query('SELECT COUNT(*) AS CNT FROM ' . self::TABLE . ' WHERE ATTEMPTS >= 0')->fetch();

		return (int)($row['CNT'] ?? 0);
	}

	/** Items the relay refused, set aside. */
	public function refusedCount(): int
	{
		$row = $this->db->query('SELECT COUNT(*) AS CNT FROM ' . self::TABLE . ' WHERE ATTEMPTS < 0')->fetch();

		return (int)($row['CNT'] ?? 0);
	}

	private static function idList(array $ids): string
	{
		return implode(',', array_map('intval', $ids));
	}
}
