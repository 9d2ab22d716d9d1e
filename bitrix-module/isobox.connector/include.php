<?php
// isobox.connector: autoload and constants only; nothing here has side effects.
// Handlers are registered once by install/index.php, not on every hit.

use Bitrix\Main\Loader;

if (!defined('ISOBOX_CONNECTOR_MODULE_ID'))
{
	define('ISOBOX_CONNECTOR_MODULE_ID', 'isobox.connector');
}

Loader::registerAutoLoadClasses(ISOBOX_CONNECTOR_MODULE_ID, [
	'Isobox\\Connector\\Module' => 'lib/module.php',
	'Isobox\\Connector\\Config' => 'lib/config.php',
	'Isobox\\Connector\\Client' => 'lib/client.php',
	'Isobox\\Connector\\Reply' => 'lib/reply.php',
	'Isobox\\Connector\\Validator' => 'lib/validator.php',
	'Isobox\\Connector\\AuthProvider' => 'lib/authprovider.php',
	'Isobox\\Connector\\EventProvider' => 'lib/eventprovider.php',
	'Isobox\\Connector\\Relay' => 'lib/relay.php',
	'Isobox\\Connector\\Spool' => 'lib/spool.php',
	'Isobox\\Connector\\Settings' => 'lib/settings.php',
	'Isobox\\Connector\\Cache\\Store' => 'lib/cache/store.php',
	'Isobox\\Connector\\Cache\\ApcuStore' => 'lib/cache/apcustore.php',
	'Isobox\\Connector\\Cache\\ManagedStore' => 'lib/cache/managedstore.php',
	'Isobox\\Connector\\Cache\\MemoryStore' => 'lib/cache/memorystore.php',
	'Isobox\\Connector\\Cache\\ScopedStore' => 'lib/cache/scopedstore.php',
]);
