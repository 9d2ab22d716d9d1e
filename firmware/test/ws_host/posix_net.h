// HostNet over a real TCP socket (POSIX): a blocking connect, as
// WiFiClient::connect on the board, then non-blocking reads.
#ifndef ISOBOX_FW_TEST_POSIX_NET_H
#define ISOBOX_FW_TEST_POSIX_NET_H

#include "WebSocketsClient.h"

class PosixNet : public HostNet {
 public:
  ~PosixNet() override;
  bool connect(const char* host, uint16_t port) override;
  bool connected() override;
  size_t read(uint8_t* out, size_t n) override;
  size_t write(const uint8_t* data, size_t n) override;
  void stop() override;

 private:
  int fd_ = -1;
  bool eof_ = false;
};

#endif  // ISOBOX_FW_TEST_POSIX_NET_H
