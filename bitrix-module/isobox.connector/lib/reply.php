<?php
namespace Isobox\Connector;

/** One answer of an isobox HTTP API. */
final class Reply
{
	public function __construct(
		/** HTTP status; 0 when no answer came (connect error, timeout). */
		public readonly int $status,
		/** The decoded JSON body, or null if there was none or it was not JSON. */
		public readonly ?array $json,
		/** What went wrong on the wire, for the log; empty on an answer. */
		public readonly string $transportError = '',
	)
	{
	}

	public function ok(): bool
	{
		return $this->status >= 200 && $this->status < 300;
	}

	/** The Bitrix-shaped error of a failed answer, or null. */
	public function error(): ?array
	{
		if ($this->json !== null && isset($this->json['error']) && $this->json['error'] !== '')
		{
			return [
				'error' => (string)$this->json['error'],
				'error_description' => (string)($this->json['error_description'] ?? ''),
			];
		}

		return null;
	}

	/** A short description for logs: never the body (it may hold tokens). */
	public function describe(): string
	{
		if ($this->status === 0)
		{
			return 'no answer: ' . $this->transportError;
		}
		$error = $this->error();

		return 'HTTP ' . $this->status . ($error !== null ? ' ' . $error['error'] : '');
	}
}
