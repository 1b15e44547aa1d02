//! s390x ECKD/DASD (FICON) volumes, protocol `fibre_channel_eckd`: see
//! `docs/dasd.md`.
