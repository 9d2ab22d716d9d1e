<?php
namespace Isobox\Tests\Unit;

use PHPUnit\Framework\TestCase;

/** lang/ru and lang/en mirror every file that shows text, with the same keys. */
final class LangTest extends TestCase
{
	private const MODULE = __DIR__ . '/../../isobox.connector';

	private static function messages(string $file): array
	{
		$MESS = [];
		include $file;

		return $MESS;
	}

	private static function files(string $dir): array
	{
		$out = [];
		$it = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($dir, \FilesystemIterator::SKIP_DOTS));
		foreach ($it as $file)
		{
			$out[] = substr($file->getPathname(), strlen($dir) + 1);
		}
		sort($out);

		return $out;
	}

	public function testBothLanguagesHaveTheSameFilesAndKeys(): void
	{
		$en = self::files(self::MODULE . '/lang/en');
		$this->assertSame($en, self::files(self::MODULE . '/lang/ru'));
		$this->assertNotEmpty($en);
		foreach ($en as $file)
		{
			$this->assertFileExists(self::MODULE . '/' . $file, 'lang file without a module file');
			$enKeys = array_keys(self::messages(self::MODULE . '/lang/en/' . $file));
			$ruKeys = array_keys(self::messages(self::MODULE . '/lang/ru/' . $file));
			sort($enKeys);
			sort($ruKeys);
			$this->assertSame($enKeys, $ruKeys, $file);
		}
	}

	public function testEveryMessageAFileUsesIsInItsLangFile(): void
	{
		foreach (self::files(self::MODULE) as $file)
		{
			if (str_starts_with($file, 'lang/') || !str_ends_with($file, '.php'))
			{
				continue;
			}
			$source = file_get_contents(self::MODULE . '/' . $file);
			preg_match_all("/Loc::getMessage\\('([A-Z0-9_]+)'\\s*[,)]/", $source, $m);
			$used = $m[1];
			if ($file === 'options.php')
			{
				// Keys built from the settings' field names and status codes.
				foreach (array_keys(\Isobox\Connector\Settings::FIELDS) as $field)
				{
					$used[] = 'ISOBOX_CONNECTOR_OPT_' . strtoupper($field);
					$used[] = 'ISOBOX_CONNECTOR_OPT_' . strtoupper($field) . '_HINT';
				}
				foreach (['URL', 'NUMBER', 'PREFIX'] as $code)
				{
					$used[] = 'ISOBOX_CONNECTOR_OPT_ERR_' . $code;
				}
				foreach (['OK', 'DENIED', 'UNREACHABLE', 'ERROR', 'NOCREDENTIALS'] as $status)
				{
					$used[] = 'ISOBOX_CONNECTOR_OPT_CHECK_' . $status;
				}
				$used[] = 'ISOBOX_CONNECTOR_OPT_SERVICE_AUTH';
				$used[] = 'ISOBOX_CONNECTOR_OPT_SERVICE_RELAY';
			}
			if ($used === [])
			{
				continue;
			}
			foreach (['en', 'ru'] as $lang)
			{
				$langFile = self::MODULE . '/lang/' . $lang . '/' . $file;
				$this->assertFileExists($langFile, "$file shows text but has no $lang file");
				$messages = self::messages($langFile);
				foreach (array_unique($used) as $key)
				{
					$this->assertArrayHasKey($key, $messages, "$lang/$file");
					$this->assertNotSame('', trim($messages[$key]), "$lang/$file $key");
				}
			}
		}
	}
}
