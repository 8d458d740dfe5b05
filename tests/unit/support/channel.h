// A sealer and an opener that share one traffic secret: one direction of a connection, in memory.
#pragma once

#include "support/common.h"

#include <sealsock/bytes.h>

#include <cstdint>
#include <vector>

#include "record/open.h"
#include "record/seal.h"

namespace sealsock::test {

struct Channel {
    record::RecordSealer sealer;
    record::RecordOpener opener;
};

Channel make_channel(const record::SuiteParams& suite, record::RotationPolicy policy = {},
                     std::uint64_t seq = 0, record::OpenLimits limits = {}, std::uint8_t salt = 1);

// Seals all of `data` (failing the test if the sealer fails) and returns the records.
std::vector<std::uint8_t> seal_all(record::RecordSealer& sealer, ByteView data,
                                   std::uint64_t now = 0);

struct Drained {
    std::vector<std::uint8_t> data;  // application bytes, in order
    std::size_t discarded = 0;       // records handled internally
    record::OpenOutcome last;        // the outcome that ended the loop
};

// Opens every record in `wire` into a buffer of `buffer_size` bytes (through a PlaintextCache
// when a record may not fit) until the input is used up or an outcome other than data/discarded.
Drained open_all(record::RecordOpener& opener, ByteView wire, std::size_t buffer_size = 1 << 15);

}  // namespace sealsock::test
