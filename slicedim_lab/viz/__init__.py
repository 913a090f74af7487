"""Figures as pure functions of tidy tables (`figures`, `spectra`, `flow`, `theory`, `quick`), their shared
look (`style`), the table builders (`tables`) and the sweep report (`report`). See README.md."""
