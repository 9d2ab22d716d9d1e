// Keys made once with openssl (genpkey; pkey -pubout -outform der) for the
// pin tests: their SubjectPublicKeyInfo in base64 and its SHA-256 in base64
// as `openssl dgst -sha256 -binary | base64` prints it. Public keys only.
#ifndef ISOBOX_FW_TEST_PIN_VECTORS_H
#define ISOBOX_FW_TEST_PIN_VECTORS_H

namespace vectors {

// 91 bytes of DER
const char kP256[] =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIuVHVpBryyY4JoD4GKOraVBETJs/JeClfQXIJDGnExGA1E4gEpyJwmoeJxFF"
    "1NmEjoIs3Sy7PARrPAIFx2+i+g==";
const char kP256Sha256[] = "ZB0eFfjoQUJ0WmaSbd5MjJ/EmBVcs5m5uCTVBisaJwo=";

// 120 bytes of DER
const char kP384[] =
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEwwKBx7Ihvi+VZ4uzQfoRFPLCm3Z3d2zhQ5KsKZArWtSQ646LQLh6fW5nqOPIyWaR"
    "neQQ0BorCepTco0U175xI4ny3T+Gd9b9m7oWRdMLFMGXg+hpS7DaFct9wiGsvTuR";
const char kP384Sha256[] = "CgXegfwLQIbbuYxlsKDmUVC1nR5PsaQC4A21R1Ce1MM=";

// 162 bytes of DER
const char kRsa1024[] =
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCvd6DEq7sxhq+4X0KNNl82nFvZb6tWuMOBySISYy1IJJCSSlroLZ1FFCuX"
    "mYNoOIOEEC5xAB9kdhMDgg8aHin/QL7A2it67GC7GDLfEiXMg+f9zWJH6n2VfkHNsRQozKBjzsEZgbVDogVfWTPSBJfOB502"
    "w+/CInjevyNYDTOIZwIDAQAB";
const char kRsa1024Sha256[] = "d8U+C9EeSx+HT2wY90PbHqd9BdHkUIn062dOj6Nt82A=";

// 294 bytes of DER
const char kRsa2048[] =
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0jQOGN0hOHX7a5SxI9qeumYyZ1MCXQO2z9BRDc1M/3UOQ99md1UA"
    "S0pQBHqgPIk1u2aVp1vMQ6DGnJunIA3yhYjs01vQi7y+4oj8x2JxrhopziMVaJct2FpXbivoRV0SHlsT1m9orOrMCo3ABzl8"
    "lEXRbH+YwFkBKUFiq1SoP4pui2Hw2HdSOlUK3PMuXFPsCplYXWCA+ymjzi/00CoFgKtLbZVpfxSbOUnhPraGysRGhCZipWcv"
    "RxfSIOCE4LGzgOcfVHP/eIAhqbIHWVCqVhEXkwUKCTzj8tkQ/28DPRsHgqVrW7c63AxCeUEie1DlXDW9VN0BLMn89/vLczVY"
    "JQIDAQAB";
const char kRsa2048Sha256[] = "IR5lEa7VO4CFzLmYxhr+IHRpeK7VrkJ8AgjB2ZZnBEM=";

// 422 bytes of DER
const char kRsa3072[] =
    "MIIBojANBgkqhkiG9w0BAQEFAAOCAY8AMIIBigKCAYEAp3+3XRMsWfHG09bnCYFY3iNUavzhEkxMjX6cxs/YBXASe1dOOgTL"
    "PRmqbLtCcPMnHVZBVJfPV/ArXH/CuAN20V257MchPMuKvtJbvHvmj50RLUWMb4LXc/lMIqOszUsnCEEn7eKqzczcolzOkhib"
    "R5pohV8cZbEuG3Olkkb1WccTrckVv+61pkQDagxk5D2aXVrq4KMCCINvsKe3hO9Sp/XPZl4Io4ET8nwqboAU3G4npI4M06yT"
    "eRkyfCyngQzN28cN8bemoJPgOQHylPgIYHIBgIoFhyaq7Xgv6cXqAUNy6I8/0nMayDDFj6ApSTHLzfGlSjiF9Ok988lP94TO"
    "EekrLNzW2ILQxmuY6QGSB1J0p3nMnZF0WMH+RXAAGClsrrZdeGqkoy03EtbC+ipukQUKur+OOqL8pQn4z61mWW4VplTfNtBM"
    "jaHKYyPtqOYp8O+IDUH1Xhq5RNvIB5ZFM3p4CxDw621RSC8QvYzOcl9OV3br+OoBYAPNl8Ns4H05AgMBAAE=";
const char kRsa3072Sha256[] = "bV+uzveT0iFpPuEUmmjt9OkPq+W0VjLSEAl7YzNBu/U=";

// 550 bytes of DER
const char kRsa4096[] =
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAuPlH/vJqbVPpi2orz9eNfSJwbXIiy+11sI4YKzYl8c50FMcJO3Am"
    "Pe9WX/6bMlREuvAUhVPeBNJmOuyEgJo/1fgZOWWojCPcBxJrG7AdIv3EZgYN3e2raZ3Ld0jDhbVDIOg+KAu5P0+/msyj5VfT"
    "e7FXmhHEhhcu4PrrP03so3JTL/voJj3Pk4iHjh0AwSCJwjKlrLXJHusQMhADZ3bTZwYUsrodlxavenaFr+EMpRjS+L3vtXbo"
    "bkQWdMn0xHkiBH4NjnULf3kNBhzouCUigD3GHmdKZJ5gQfVkpiwfc/KWjrOd4oTnapBzY7SIBw6roUhm3m4f2SSM73S2uM4/"
    "C33c/zlUS6p1xfl0E+8SgcD3NszWUh5gGKTlr59B+HoVfbvSGDgKT92KSRQyf6lhX/GB/VCjd+hQH6xXy55Cpeiuyz3dbqgw"
    "1WJeYxB/dcryWwHkMCqZUeggokkqhp+gO3tqdh1h0Q8rIHV+uoPi2cLm+DmdXcAn5/Xx+HiKOaeKd2QXgNr2phIwsvOVAblV"
    "IGs/j6V3Gvu2ODj+cwRgN9sp9U9VQ2+IW8sTr8p+ekaR/duWtX4hD/xwnwzAoIN4/kM5jUkEnF21Y34Ohogu08aDzX8Umit/"
    "C30NWKyvlj7IVU3BLFV9JNm7Ch+U9n5iz7oRRsKUahIfHsinACILaVMCAwEAAQ==";
const char kRsa4096Sha256[] = "cU+QmomonpwxFEQiko1b1t4DlpvHl0GrwMdrIywOkkI=";

// 44 bytes of DER
const char kEd25519[] =
    "MCowBQYDK2VwAyEA7GOFMV7J/5X2agOvTkvVv6uZo6Ltwydnu1uoLycr/zc=";
const char kEd25519Sha256[] = "I3IF1e7X0/BfhZvmt3OzlPVSrpoM1wRXS1k3BCvdFrk=";

// A self-signed certificate of the P-256 key above: not a pin.
const char kP256Cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBbjCCAROgAwIBAgIUWe6tTo02sh/MxwaT0G/yJN1jHxIwCgYIKoZIzj0EAwIw\n"
    "DDEKMAgGA1UEAwwBeDAeFw0yNjEyMDQxODE3NTJaFw0yNjEyMDUxODE3NTJaMAwx\n"
    "CjAIBgNVBAMMAXgwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQi5UdWkGvLJjgm\n"
    "gPgYo6tpUERMmz8l4KV9BcgkMacTEYDUTiASnInCah4nEUXU2YSOgizdLLs8BGs8\n"
    "AgXHb6L6o1MwUTAdBgNVHQ4EFgQUSIaZ4q4wGmRc0zP6a1aZ2T6A8A8wHwYDVR0j\n"
    "BBgwFoAUSIaZ4q4wGmRc0zP6a1aZ2T6A8A8wDwYDVR0TAQH/BAUwAwEB/zAKBggq\n"
    "hkjOPQQDAgNJADBGAiEA4G+nYp+MnJRqmFQS/UbD9OuNl+ndK1ka5W/tDS7zwksC\n"
    "IQCQlQwzT9VHuhVz6yApPVS4VzOUrnKsYIdjCR4WPgzTzg==\n"
    "-----END CERTIFICATE-----\n";

// The P-256 key as `openssl pkey -pubout` prints it (PEM).
const char kP256Pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIuVHVpBryyY4JoD4GKOraVBETJs/\n"
    "JeClfQXIJDGnExGA1E4gEpyJwmoeJxFF1NmEjoIs3Sy7PARrPAIFx2+i+g==\n"
    "-----END PUBLIC KEY-----\n";

}  // namespace vectors

#endif  // ISOBOX_FW_TEST_PIN_VECTORS_H
