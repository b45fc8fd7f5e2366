"""ISO 4217 List One: every active alphabetic code and its minor-unit exponent.

The exponent says how many minor units make one major unit (10**exponent): a
``Payment`` amount of 1999 in USD (exponent 2) is 19.99 USD; 12000 in KRW (exponent 0)
is 12,000 KRW.

Source: the List One table published by SIX Financial Information (the ISO 4217
maintenance agency) of 2024-06-25, brought up to date with amendments 176-180:

* 176: XCG (Caribbean guilder) replaces ANG for Curacao and Sint Maarten (2025-03-31).
* 177: ZWG (Zimbabwe Gold) replaces ZWL (already in the 2024-06-25 table).
* 178: CUC (Cuban convertible peso) moved to List Three, withdrawn 2021-06.
* 179: XAD (Arab Accounting Dinar, a fund code) added with exponent 2 (2025-05-12).
* 180: BGN moved to List Three when Bulgaria joined the euro (2026-01-01).

Fund codes that ISO lists with a minor unit are included (BOV, CHE, CHW, CLF, COU,
MXV, USN, UYI, XAD); codes whose minor unit is "N.A." are not: precious metals (XAU,
XAG, XPD, XPT), units of account (XDR, XSU, XUA, XBA-XBD), XTS (testing) and XXX
(no currency). Re-check this table against each new ISO 4217 amendment.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["CURRENCIES"]

_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB "
    "EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES "
    "KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD "
    "RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP "
    "TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG"
)

CURRENCIES: Mapping[str, int] = MappingProxyType(
    {
        code: exponent
        for codes, exponent in (
            (_EXPONENT_0, 0),
            (_EXPONENT_2, 2),
            (_EXPONENT_3, 3),
            (_EXPONENT_4, 4),
        )
        for code in codes.split()
    }
)
"""Active ISO 4217 alphabetic code -> minor-unit exponent (read-only)."""
