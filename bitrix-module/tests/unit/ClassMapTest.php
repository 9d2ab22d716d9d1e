<?php
namespace Isobox\Tests\Unit;

use PHPUnit\Framework\TestCase;

/**
 * include.php's class map names every class in lib/, at the path the D7
 * autoloader would derive from its name (namespace after Isobox\Connector,
 * lowercased), so the module loads with either mechanism.
 */
final class ClassMapTest extends TestCase
{
	public function testTheClassMapCoversLibExactly(): void
	{
		$source = file_get_contents(__DIR__ . '/../../isobox.connector/include.php');
		preg_match_all("/'(Isobox\\\\\\\\Connector\\\\\\\\[A-Za-z\\\\\\\\]+)' => '([a-z\\/]+\\.php)'/", $source, $m);
		$map = array_combine(array_map('stripslashes', $m[1]), $m[2]);
		$this->assertNotEmpty($map);

		$lib = realpath(__DIR__ . '/../../isobox.connector/lib');
		$declared = [];
		$it = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($lib, \FilesystemIterator::SKIP_DOTS));
		foreach ($it as $file)
		{
			$code = file_get_contents($file->getPathname());
			preg_match('/^namespace ([A-Za-z\\\\]+);/m', $code, $ns);
			preg_match('/^(?:final |abstract )?(?:class|interface) ([A-Za-z]+)/m', $code, $class);
			$this->assertNotEmpty($class, $file->getPathname());
			$name = $ns[1] . '\\' . $class[1];
			$declared[$name] = 'lib/' . substr($file->getPathname(), strlen($lib) + 1);
			$this->assertSame(
				'lib/' . strtolower(str_replace('\\', '/', substr($name, strlen('Isobox\\Connector\\')))) . '.php',
				$declared[$name],
				"$name is not where the D7 autoloader looks"
			);
		}
		ksort($declared);
		ksort($map);
		$this->assertSame($declared, $map);
	}
}
