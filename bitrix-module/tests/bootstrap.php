<?php
// PHPUnit bootstrap: the Bitrix stand-ins and the portal harness. The module
// itself is loaded the way a portal loads it, by Loader::includeModule after
// install.
error_reporting(E_ALL);
require __DIR__ . '/bitrix/main.php';
require __DIR__ . '/bitrix/global.php';
require __DIR__ . '/bitrix/rest.php';
require __DIR__ . '/bitrix/portal.php';
require __DIR__ . '/stub/server.php';
require __DIR__ . '/unit/PortalTestCase.php';
