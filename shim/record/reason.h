// Why a record or a connection failed: one byte, and its human sentence.
//
// Failures are stored in session state that lives in shared memory and may be mapped at another
// address by another program image after exec (DESIGN I5), so the state keeps this code, never a
// pointer to a string; reason_text() turns it into the sentence for the log. The receive side's
// own failures (FIN inside a record, vanished queued bytes) are listed here too so that one code
// describes every way a sealed connection's reading can stop.
//
// Thread-safe, no allocation: usable from a hook and from a signal handler.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sealsock::record {

enum class Reason : std::uint8_t {
    none,
    // RecordOpener::inspect(): the header.
    change_cipher_spec,
    unprotected_alert,
    not_application_data,
    bad_legacy_version,
    record_too_long,
    // RecordOpener::open().
    already_failed,
    nondata_flood,
    bad_record_mac,
    sequence_wrap,
    no_content_type,
    plaintext_too_long,
    split_handshake_interrupted,
    bad_inner_type,
    bad_alert_length,
    peer_alert,
    empty_handshake,
    key_update_not_at_end,
    key_update_failed,
    // PostHandshakeParser.
    ticket_length,
    key_update_length,
    handshake_type,
    ticket_field_short,
    ticket_trailing_bytes,
    key_update_value,
    ticket_truncated_field,
    // ReceiveSide.
    whole_record_held,
    cache_open_failed,
    discard_failed,
    queued_bytes_vanished,
    fin_inside_record,
};

namespace detail {

struct ReasonText {
    Reason code;
    const char* text;
};

// Indexed by the code; reason_table_in_order() checks that at compile time.
inline constexpr ReasonText reason_table[] = {
    {Reason::none, ""},
    {Reason::change_cipher_spec, "peer sent ChangeCipherSpec after the handshake"},
    {Reason::unprotected_alert, "peer sent an unprotected alert after the handshake"},
    {Reason::not_application_data, "peer sent a record that is not TLS 1.3 application_data"},
    {Reason::bad_legacy_version, "record has a legacy version other than 0x0303"},
    {Reason::record_too_long, "record is longer than 2^14 + 256 bytes"},
    {Reason::already_failed, "connection already failed"},
    {Reason::nondata_flood, "peer sent too many records in a row without application data"},
    {Reason::bad_record_mac, "record failed authentication"},
    {Reason::sequence_wrap, "peer's sequence number would wrap"},
    {Reason::no_content_type, "record has no content type (all padding)"},
    {Reason::plaintext_too_long, "record plaintext is longer than 2^14 + 1 bytes"},
    {Reason::split_handshake_interrupted, "record interrupts a split handshake message"},
    {Reason::bad_inner_type, "record has an inner content type not allowed after the handshake"},
    {Reason::bad_alert_length, "alert record is not 2 bytes long"},
    {Reason::peer_alert, "peer ended the connection with an alert"},
    {Reason::empty_handshake, "peer sent an empty handshake record"},
    {Reason::key_update_not_at_end, "KeyUpdate does not end its record"},
    {Reason::key_update_failed, "could not update the read key"},
    {Reason::ticket_length, "NewSessionTicket has an impossible length"},
    {Reason::key_update_length, "KeyUpdate has the wrong length"},
    {Reason::handshake_type,
     "peer sent a handshake message that is not allowed after the handshake"},
    {Reason::ticket_field_short, "NewSessionTicket field is too short"},
    {Reason::ticket_trailing_bytes, "NewSessionTicket has trailing bytes"},
    {Reason::key_update_value, "KeyUpdate request_update is not 0 or 1"},
    {Reason::ticket_truncated_field, "NewSessionTicket ends inside a field"},
    {Reason::whole_record_held, "receive state holds a whole record"},
    {Reason::cache_open_failed, "record did not open into the cache"},
    {Reason::discard_failed, "connection failed while discarding a record"},
    {Reason::queued_bytes_vanished,
     "a record's queued bytes vanished (another reader on the socket?)"},
    {Reason::fin_inside_record, "peer closed the TCP connection inside a record"},
};
inline constexpr std::size_t reason_count = sizeof reason_table / sizeof reason_table[0];

constexpr bool reason_table_in_order() {
    for (std::size_t i = 0; i < reason_count; ++i)
        if (static_cast<std::size_t>(reason_table[i].code) != i) return false;
    return static_cast<std::size_t>(Reason::fin_inside_record) + 1 == reason_count;
}
static_assert(reason_table_in_order(), "reason_table must list every Reason once, in order");

}  // namespace detail

// The sentence for `code` (static storage); "unknown failure" for a value outside the enum, as a
// corrupted shared slot might hold.
[[nodiscard]] constexpr const char* reason_text(Reason code) {
    const auto i = static_cast<std::size_t>(code);
    return i < detail::reason_count ? detail::reason_table[i].text : "unknown failure";
}

}  // namespace sealsock::record
