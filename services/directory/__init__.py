"""The directory: who and where the registry's parties are. It will hold the party directory
(the bodies that sign agreements and the names they sign under); today it holds the map of
provinces that agreements' `locality` refers to.

`provinces_2025.json` is the rearrangement of the provincial-level units by Resolution
202/2025/QH15 of the National Assembly (Nghị quyết số 202/2025/QH15 ngày 12/6/2025 về việc sắp
xếp đơn vị hành chính cấp tỉnh): the 63 units before it, merged into 34 (23 formed by merging
two or three units, 11 left as they were), with the resolution's number, title and dates in the
file itself. The resolution is in force from its adoption on 12 June 2025; the authorities of the
new units operate from 1 July 2025, the day this package treats as the switch. The file records
only what the resolution decides (names, kinds, which units formed which), no seats, areas or
populations. `provinces.py` reads it (once, as package data, so an installed wheel works too) and
answers which unit governs a former province on a date, and which former units make up a current
one, matching names as people write them.
"""
