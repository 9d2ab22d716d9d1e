#pragma once
// libraries/ESP8266WiFi/src/WiFiClientSecureBearSSL.h and BearSSLHelpers.h
// of the ESP8266 core at f946290e (the members the pinned TLS client of
// arduino/websockets_pinned_tls.h uses), with the BearSSL constants it
// reads from bearssl_ssl.h / bearssl_x509.h of bearssl-esp8266 at 5166f2bb
// (the same values).
#include <ESP8266WiFi.h>

#define BR_ERR_OK 0
#define BR_ERR_TOO_LARGE 6
#define BR_ERR_BAD_SIGNATURE 27
#define BR_ERR_WRONG_KEY_USAGE 28
#define BR_ERR_X509_NOT_TRUSTED 62
#define BR_KEYTYPE_KEYX 0x10
#define BR_KEYTYPE_SIGN 0x20

// bearssl_ec.h
typedef struct {
  int curve;
  unsigned char* q;
  size_t qlen;
} br_ec_public_key;

namespace BearSSL {

class PublicKey {
 public:
  PublicKey();
  PublicKey(const char* pemKey);
  PublicKey(const uint8_t* derKey, size_t derLen);
  ~PublicKey();
  bool parse(const char* pemKey);
  bool parse(const uint8_t* derKey, size_t derLen);
  bool isRSA() const;
  bool isEC() const;
  const br_ec_public_key* getEC() const;
  PublicKey(const PublicKey& that) = delete;
  PublicKey& operator=(const PublicKey& that) = delete;
};

class WiFiClientSecure : public WiFiClient {
 public:
  WiFiClientSecure();
  ~WiFiClientSecure() override;
  int connect(IPAddress ip, uint16_t port) override;
  int connect(const String& host, uint16_t port) override;
  int connect(const char* name, uint16_t port) override;
  uint8_t connected() override;
  void stop() override;
  void setInsecure();
  void setKnownKey(const PublicKey* pk, unsigned usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN);
  bool setFingerprint(const uint8_t fingerprint[20]);
  bool setFingerprint(const char* fpStr);
  void setBufferSizes(int recv, int xmit);
  int getLastSSLError(char* dest = NULL, size_t len = 0);
  static bool probeMaxFragmentLength(IPAddress ip, uint16_t port, uint16_t len);
  static bool probeMaxFragmentLength(const char* hostname, uint16_t port, uint16_t len);
  static bool probeMaxFragmentLength(const String& host, uint16_t port, uint16_t len);
};

}  // namespace BearSSL
