"""The SMTP proxy: an aiosmtpd handler relaying each message to the upstream server."""
