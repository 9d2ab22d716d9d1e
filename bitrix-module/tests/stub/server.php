<?php
namespace Isobox\Tests;

/**
 * Runs stub/router.php under `php -S` on a free loopback port for the unit
 * tests, and gives the test its state (what arrived, relay up or down).
 */
final class StubServer
{
	private $process;
	public readonly string $url;
	private string $stateFile;

	public function __construct(string $bearer)
	{
		$this->stateFile = tempnam(sys_get_temp_dir(), 'isobox-stub-');
		$this->write(['bearer' => $bearer, 'relay' => 'up', 'clients' => [], 'tokens' => (object)[]]);

		$probe = stream_socket_server('tcp://127.0.0.1:0');
		$address = stream_socket_get_name($probe, false);
		fclose($probe);
		$this->url = 'http://' . $address;

		$env = getenv();
		$env['ISOBOX_STUB_STATE'] = $this->stateFile;
		$this->process = proc_open(
			[PHP_BINARY, '-S', $address, __DIR__ . '/router.php'],
			[0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']],
			$pipes,
			null,
			$env
		);
		// Ready when it accepts a connection.
		for ($i = 0; $i < 200; $i++)
		{
			$conn = @stream_socket_client('tcp://' . $address, $errno, $errstr, 0.05);
			if ($conn !== false)
			{
				fclose($conn);

				return;
			}
			usleep(10000);
		}
		throw new \RuntimeException('stub server did not start on ' . $address);
	}

	public function state(): array
	{
		return json_decode((string)file_get_contents($this->stateFile), true) ?: [];
	}

	public function change(callable $fn): void
	{
		$fh = fopen($this->stateFile, 'c+');
		flock($fh, LOCK_EX);
		$state = json_decode(stream_get_contents($fh) ?: '{}', true) ?: [];
		$state = $fn($state);
		ftruncate($fh, 0);
		rewind($fh);
		fwrite($fh, json_encode($state));
		flock($fh, LOCK_UN);
		fclose($fh);
	}

	public function calls(string $path): int
	{
		return (int)($this->state()['calls'][$path] ?? 0);
	}

	public function stop(): void
	{
		if (is_resource($this->process))
		{
			proc_terminate($this->process);
			proc_close($this->process);
		}
		@unlink($this->stateFile);
	}

	private function write(array $state): void
	{
		file_put_contents($this->stateFile, json_encode($state));
	}
}
