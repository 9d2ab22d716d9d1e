<?php
/**
 * Settings page of isobox.connector (Settings → Module settings).
 *
 * @var CMain $APPLICATION
 */
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Isobox\Connector\Settings;

if (!defined('B_PROLOG_INCLUDED') || B_PROLOG_INCLUDED !== true)
{
	die();
}

$module_id = 'isobox.connector';
Loc::loadMessages(__FILE__);

$right = $APPLICATION->GetGroupRight($module_id);
if ($right < 'R')
{
	$APPLICATION->AuthForm(Loc::getMessage('ISOBOX_CONNECTOR_OPT_ACCESS_DENIED'));

	return;
}
Loader::includeModule($module_id);

$errors = [];
$notes = [];
$checks = null;
$posted = ($_SERVER['REQUEST_METHOD'] ?? '') === 'POST'
	&& (isset($_POST['save']) || isset($_POST['apply']) || isset($_POST['check']));

if ($posted)
{
	// Both the right and the session token, before anything is stored or sent.
	if ($right < 'W' || !check_bitrix_sessid())
	{
		$errors[] = Loc::getMessage('ISOBOX_CONNECTOR_OPT_ACCESS_DENIED');
	}
	elseif (isset($_POST['check']))
	{
		$checks = Settings::check();
	}
	else
	{
		global $USER;
		foreach (Settings::save($_POST, is_object($USER) && $USER->IsAdmin()) as $field => $code)
		{
			$errors[] = Loc::getMessage('ISOBOX_CONNECTOR_OPT_ERR_' . strtoupper($code), [
				'#FIELD#' => Loc::getMessage('ISOBOX_CONNECTOR_OPT_' . strtoupper($field)),
			]);
		}
		if ($errors === [])
		{
			$notes[] = Loc::getMessage('ISOBOX_CONNECTOR_OPT_SAVED');
		}
	}
}

$values = Settings::values();
if ($posted && $errors !== [] && !isset($_POST['check']))
{
	// Show what the administrator typed, not the stored values.
	foreach (Settings::FIELDS as $field => $kind)
	{
		if ($kind !== 'secret' && isset($_POST[$field]) && is_scalar($_POST[$field]))
		{
			$values[$field] = (string)$_POST[$field];
		}
	}
}

// CAdminMessage prints HTML; every text here is escaped (the check's details
// come from the services' answers).
foreach ($errors as $error)
{
	CAdminMessage::ShowMessage(htmlspecialcharsbx($error));
}
foreach ($notes as $note)
{
	CAdminMessage::ShowNote(htmlspecialcharsbx($note));
}
if ($checks !== null)
{
	foreach ($checks as $service => [$status, $detail])
	{
		$text = Loc::getMessage('ISOBOX_CONNECTOR_OPT_SERVICE_' . strtoupper($service)) . ': '
			. Loc::getMessage('ISOBOX_CONNECTOR_OPT_CHECK_' . strtoupper($status))
			. ($detail !== '' ? ' (' . $detail . ')' : '');
		if ($status === 'ok')
		{
			CAdminMessage::ShowNote(htmlspecialcharsbx($text));
		}
		else
		{
			CAdminMessage::ShowMessage(htmlspecialcharsbx($text));
		}
	}
}

// What waits in the spool, so an outage of the relay is visible here.
try
{
	$spool = \Isobox\Connector\Module::spool();
	CAdminMessage::ShowNote(htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_SPOOL', [
		'#PENDING#' => $spool->count(),
		'#REFUSED#' => $spool->refusedCount(),
	])));
}
catch (\Throwable $e)
{
	CAdminMessage::ShowMessage(htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_SPOOL_ERROR')));
}

$tabControl = new CAdminTabControl('isobox_connector_options', [
	[
		'DIV' => 'settings',
		'TAB' => Loc::getMessage('ISOBOX_CONNECTOR_OPT_TAB'),
		'TITLE' => Loc::getMessage('ISOBOX_CONNECTOR_OPT_TAB_TITLE'),
	],
]);

$input = static function (string $field, string $value, string $type = 'text'): string {
	return '<input type="' . $type . '" size="50" name="' . htmlspecialcharsbx($field) . '" value="' . htmlspecialcharsbx($value) . '">';
};

$tabControl->Begin();
?>
<form method="post" action="<?= htmlspecialcharsbx($APPLICATION->GetCurPage()) ?>?mid=<?= urlencode($module_id) ?>&amp;lang=<?= LANGUAGE_ID ?>">
<?= bitrix_sessid_post() ?>
<?php $tabControl->BeginNextTab(); ?>
<?php foreach (Settings::FIELDS as $field => $kind): ?>
	<tr>
		<td width="40%" valign="top"><label><?= htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_' . strtoupper($field))) ?></label></td>
		<td width="60%">
			<?php if ($kind === 'list'): ?>
				<textarea name="<?= $field ?>" rows="4" cols="50"><?= htmlspecialcharsbx($values[$field]) ?></textarea>
			<?php elseif ($kind === 'flag'): ?>
				<input type="hidden" name="<?= $field ?>" value="N">
				<input type="checkbox" name="<?= $field ?>" value="Y"<?= $values[$field] === 'Y' ? ' checked' : '' ?>>
			<?php elseif ($kind === 'secret'): ?>
				<?= $input($field, '', 'password') ?>
				<?php if (Settings::hasSecret()): ?>
					<br><label><input type="checkbox" name="client_secret_reset" value="Y"> <?= htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_SECRET_RESET')) ?></label>
				<?php endif; ?>
			<?php else: ?>
				<?= $input($field, $values[$field]) ?>
			<?php endif; ?>
			<br><small><?= htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_' . strtoupper($field) . '_HINT')) ?></small>
		</td>
	</tr>
<?php endforeach; ?>
<?php $tabControl->Buttons(); ?>
	<input type="submit" name="save" value="<?= htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_SAVE')) ?>" class="adm-btn-save"<?= $right < 'W' ? ' disabled' : '' ?>>
	<input type="submit" name="check" value="<?= htmlspecialcharsbx(Loc::getMessage('ISOBOX_CONNECTOR_OPT_CHECK')) ?>"<?= $right < 'W' ? ' disabled' : '' ?>>
<?php $tabControl->End(); ?>
</form>
