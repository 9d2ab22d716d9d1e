<?php
// The signature check of docs/delivery.md, run by delivery_test.go against
// real deliveries: php verify.php SECRET ID TIMESTAMP SIGNATURES < body

function isobox_verify(string $secret, string $id, string $ts, string $signatures, string $body, int $tolerance = 300): bool
{
    if ($id === '' || !ctype_digit($ts) || abs(time() - (int)$ts) > $tolerance) {
        return false; // missing headers, or too old / from the future (replay)
    }
    $key = base64_decode(substr($secret, strlen('whsec_')), true);
    if ($key === false) {
        return false;
    }
    $expected = 'v1,' . base64_encode(hash_hmac('sha256', $id . '.' . $ts . '.' . $body, $key, true));
    foreach (explode(' ', $signatures) as $sig) {
        if (hash_equals($expected, $sig)) {
            return true; // during a secret rotation one of two signatures matches
        }
    }
    return false;
}

[$secret, $id, $ts, $sigs] = array_slice($argv, 1, 4);
echo isobox_verify($secret, $id, $ts, $sigs, stream_get_contents(STDIN)) ? "ok\n" : "bad\n";
