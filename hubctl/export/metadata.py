"""Bundle metadata: the Frictionless Data Package (``datapackage.json``, v2) and the DCAT-AP 3.0
description (``dcat.ttl``, ``dcat.jsonld``) of the same files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hubctl.errors import UsageError
from hubctl.export.tables import Column, Published

__all__ = ["BundleFile", "BundleMeta", "datapackage", "dcat_graph", "licence_of", "table_schema"]

MEDIA = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv",
         "geojson": "application/geo+json", "ngsi-ld": "application/ld+json"}
IANA = "http://www.iana.org/assignments/media-types/"
EU = "http://publications.europa.eu/resource/authority/"
FREQUENCIES = ("CONT", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "ANNUAL", "IRREG",
               "NEVER", "UNKNOWN")
THEMES = {"AGRI": "Agriculture, fisheries, forestry and food", "ECON": "Economy and finance",
          "EDUC": "Education, culture and sport", "ENER": "Energy", "ENVI": "Environment",
          "GOVE": "Government and public sector", "HEAL": "Health",
          "INTR": "International issues", "JUST": "Justice, legal system and public safety",
          "REGI": "Regions and cities", "SOCI": "Population and society",
          "TECH": "Science and technology", "TRAN": "Transport"}
_TYPE_THEMES = (("Gtfs", "TRAN"), ("Vehicle", "TRAN"), ("RoadSegment", "TRAN"),
                ("StopBoardings", "TRAN"), ("AirQuality", "ENVI"), ("Alert", "JUST"),
                ("EVCharging", "ENER"), ("MeterReading", "ENER"), ("Population", "SOCI"),
                ("derived.patrol", "JUST"), ("derived.dispatch", "JUST"),
                ("derived.energy", "ENER"), ("derived.bus", "TRAN"),
                ("derived.transit", "TRAN"))
_SPDX = {"CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
         "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
         "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
         "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
         "OGL-UK-3.0": "https://www.nationalarchives.gov.uk/doc/open-government-licence/"
                       "version/3/"}


@dataclass(frozen=True)
class BundleFile:
    """One data file of the bundle."""

    path: str  # relative to the bundle, e.g. data/AirQualityObserved.csv
    fmt: str
    bytes: int
    sha256: str
    table: str


@dataclass
class BundleMeta:
    """What the bundle says about itself (from hub.toml, the command line and the lake)."""

    name: str
    title: str
    description: str
    licence: str  # SPDX id or URL
    publisher: dict[str, str]
    keywords: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    frequency: str | None = None
    contact: str | None = None
    spatial: tuple[float, float, float, float] | None = None
    temporal: tuple[datetime | None, datetime | None] = (None, None)
    issued: datetime | None = None
    base_url: str = ""
    series: bool = False
    titles: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


def licence_of(value: str | None) -> tuple[str, str]:
    """(name, URL) of a licence given as an SPDX identifier or a URL; UsageError if absent."""
    if not value:
        raise UsageError("no licence for the bundle: an open-data bundle must say how it may "
                         "be reused", hint="pass --licence CC-BY-4.0 (an SPDX id or a URL) or set "
                                           "licence in [publisher] or [exports.NAME] of hub.toml")
    if re.match(r"^https?://\S+$", value):
        return value.rstrip("/").rsplit("/", 1)[-1] or value, value
    if not re.match(r"^[A-Za-z0-9.+-]+$", value):
        raise UsageError(f"licence {value!r} is neither an SPDX identifier nor a URL",
                         hint="e.g. CC-BY-4.0, CC0-1.0, ODbL-1.0 or https://...")
    return value, _SPDX.get(value, f"https://spdx.org/licenses/{value}.html")


def _field_type(col: Column) -> dict[str, Any]:
    duck = col.duck.upper()
    if col.role == "list":
        return {"type": "array"}
    if col.role == "geometry":
        return {"type": "geojson"}
    if col.role == "json":
        return {"type": "string", "format": "default"}
    if duck in ("DOUBLE", "FLOAT", "REAL") or duck.startswith("DECIMAL"):
        return {"type": "number"}
    if duck in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return {"type": "integer"}
    if duck == "BOOLEAN":
        return {"type": "boolean"}
    if duck.startswith("TIMESTAMP"):
        return {"type": "datetime"}
    if duck == "DATE":
        return {"type": "date"}
    return {"type": "string"}


def table_schema(pub: Published, published: dict[str, Published], stem_of: dict[str, str],
                 parquet: bool = False) -> dict[str, Any]:
    """A Table Schema for one published table: types, units, descriptions, constraints,
    primaryKey and foreignKeys (Relationships to a static type exported in the same bundle).
    For Parquet, value ranges are left out and integer columns with missing values are
    declared numbers: frictionless reads Parquet through pandas, which turns a missing number
    into a float NaN and then fails range and integer checks on it."""
    fields = []
    for col in pub.columns:
        f: dict[str, Any] = {"name": col.name, **_field_type(col)}
        if parquet and col.name in pub.nullable_ints:
            # pandas (frictionless' Parquet reader) makes a nullable integer column float
            f["type"] = "number"
        text = col.description + (f" Unit: {col.unit} (UN/CEFACT)." if col.unit else "")
        if text:
            f["description"] = text.strip()
        if col.unit:
            f["unitCode"] = col.unit  # hubctl extension (UN/CEFACT common code)
        cons = dict(col.constraints)
        if parquet:
            cons = {k: v for k, v in cons.items() if k not in ("minimum", "maximum")}
        if col.name in pub.key and pub.mode != "derived":
            cons["required"] = True
        if f["type"] not in ("string",):
            cons.pop("pattern", None)
        if cons:
            f["constraints"] = cons
        fields.append(f)
    schema: dict[str, Any] = {"fields": fields}
    if pub.mode != "derived":
        schema["primaryKey"] = list(pub.key)
    fks = []
    if pub.entity is not None and pub.mode == "rows":
        for attr in pub.entity.attributes.values():
            target = published.get(attr.object_type or "")
            if (attr.kind == "Relationship" and target is not None and target.mode == "rows"
                    and target.entity is not None and not target.entity.time_series
                    and any(c.name == attr.name for c in pub.columns)
                    and not target.filters):
                fks.append({"fields": [attr.name],
                            "reference": {"resource": stem_of[target.label], "fields": ["id"]}})
    if fks:
        schema["foreignKeys"] = fks
    return schema


def resource_name(label: str, fmt: str) -> str:
    """A Frictionless resource name (lower case, ``[a-z0-9._-]``)."""
    return re.sub(r"[^a-z0-9._-]+", "-", f"{label}-{fmt}".lower())


def datapackage(meta: BundleMeta, pubs: list[Published], files: list[BundleFile],
                provenance: dict[str, str]) -> dict[str, Any]:
    """The ``datapackage.json`` document (Data Package v2)."""
    lic_name, lic_url = licence_of(meta.licence)
    by_label = {p.label: p for p in pubs}
    csv_of = {p.label: resource_name(p.label, "csv") for p in pubs}
    resources = []
    for f in files:
        pub = by_label[f.table]
        res: dict[str, Any] = {
            "name": resource_name(f.table, f.fmt), "path": f.path,
            "title": f"{meta.titles.get(f.table, f.table)} ({f.fmt})",
            "description": meta.descriptions.get(f.table, ""),
            "format": "jsonl" if f.fmt == "ngsi-ld" else f.fmt, "mediatype": MEDIA[f.fmt],
            "sources": [{"title": provenance.get(f.table, "hubctl lake")}],
        }
        if f.fmt != "parquet":  # frictionless cannot count Parquet bytes (SHA256SUMS can)
            res.update({"bytes": f.bytes, "hash": f"sha256:{f.sha256}"})
        if f.fmt in ("csv", "parquet"):
            res["type"] = "table"
            if f.fmt == "csv":
                res["encoding"] = "utf-8"
            res["schema"] = table_schema(pub, by_label, csv_of if f.fmt == "csv" else {
                k: resource_name(k, "parquet") for k in csv_of}, parquet=f.fmt == "parquet")
        else:
            res["type"] = "json" if f.fmt == "geojson" else "file"
        resources.append(res)
    contributors = [{"title": meta.publisher.get("name", ""), "roles": ["publisher"],
                     **({"path": meta.publisher["url"]} if meta.publisher.get("url") else {}),
                     **({"email": meta.publisher["email"]} if meta.publisher.get("email")
                        else {})}]
    doc: dict[str, Any] = {
        "$schema": "https://datapackage.org/profiles/2.0/datapackage.json",
        "name": resource_name(meta.name, "bundle").removesuffix("-bundle"),
        "title": meta.title, "description": meta.description,
        "licenses": [{"name": lic_name, "path": lic_url}],
        "contributors": contributors, "keywords": list(meta.keywords),
        "resources": resources,
    }
    if meta.issued is not None:
        doc["created"] = meta.issued.strftime("%Y-%m-%dT%H:%M:%SZ")
    return doc


def themes_for(labels: list[str], given: list[str]) -> list[str]:
    """EU data themes: the ones given (codes), else guessed from the table names."""
    if given:
        bad = [t for t in given if t.upper() not in THEMES]
        if bad:
            raise UsageError(f"unknown theme(s) {', '.join(bad)}",
                             hint=f"EU data themes: {', '.join(THEMES)}")
        return [t.upper() for t in given]
    found = {code for label in labels for prefix, code in _TYPE_THEMES
             if label.startswith(prefix)}
    return sorted(found or {"REGI"})


def sdm_schema(et: Any) -> str | None:
    """The Smart Data Models schema URL of a type that is an SDM type (not hubctl's own)."""
    if et is None or et.description.startswith("hubctl's own type"):
        return None
    for ctx in et.context:
        m = re.search(r"smart-data-models/(dataModel\.\w+)/", ctx)
        if m:
            return f"https://smart-data-models.github.io/{m.group(1)}/{et.name}/schema.json"
    return None


def dcat_graph(meta: BundleMeta, pubs: list[Published], files: list[BundleFile],
               provenance: dict[str, str], base: str) -> Any:
    """The DCAT-AP 3.0 graph: a Catalogue, a Dataset per table, a Distribution per file.
    Every node is an IRI under ``base`` (no blank nodes: the serialisation is reproducible)."""
    from rdflib import Graph, Literal, Namespace, URIRef
    from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

    dct, g = DCTERMS, Graph()
    spdx = Namespace("http://spdx.org/rdf/terms#")
    vcard = Namespace("http://www.w3.org/2006/vcard/ns#")
    locn = Namespace("http://www.w3.org/ns/locn#")
    for prefix, ns in (("dcat", DCAT), ("dct", dct), ("foaf", FOAF), ("spdx", spdx),
                       ("vcard", vcard), ("skos", SKOS), ("locn", locn)):
        g.bind(prefix, ns)

    def node(local: str) -> URIRef:
        return URIRef(base + local)

    def stamp(ts: datetime) -> Literal:
        return Literal(ts.strftime("%Y-%m-%dT%H:%M:%SZ"), datatype=XSD.dateTime)

    lic_name, lic_url = licence_of(meta.licence)
    licence = URIRef(lic_url)
    g.add((licence, RDF.type, dct.LicenseDocument))
    g.add((licence, RDFS.label, Literal(lic_name)))
    publisher = node("#publisher")
    g.add((publisher, RDF.type, FOAF.Agent))
    g.add((publisher, FOAF.name, Literal(meta.publisher.get("name", ""))))
    if meta.publisher.get("url"):
        g.add((publisher, FOAF.homepage, URIRef(meta.publisher["url"])))
    contact = None
    email = meta.contact or meta.publisher.get("email")
    if email:
        contact = node("#contact")
        g.add((contact, RDF.type, vcard.Kind))
        g.add((contact, vcard.fn, Literal(meta.publisher.get("name", "") or email)))
        g.add((contact, vcard.hasEmail, URIRef(f"mailto:{email}")))
    catalog = node("#catalog")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, dct.title, Literal(meta.title)))
    g.add((catalog, dct.description, Literal(meta.description)))
    g.add((catalog, dct.publisher, publisher))
    g.add((catalog, dct.license, licence))
    if meta.base_url:  # published: the bundle's own page is the catalogue's home page
        g.add((catalog, FOAF.homepage, URIRef(base + "index.html")))
    if meta.issued is not None:
        g.add((catalog, dct.modified, stamp(meta.issued)))
        g.add((catalog, dct.issued, stamp(meta.issued)))
    wkt = URIRef("http://www.opengis.net/ont/geosparql#wktLiteral")

    def location(local: str, box: tuple[float, float, float, float]) -> URIRef:
        """A dct:Location with its bounding box and the box's centre as centroid."""
        place = node(local)
        w, s, e, n = box
        g.add((place, RDF.type, dct.Location))
        g.add((place, DCAT.bbox, Literal(
            f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))", datatype=wkt)))
        centre = f"POINT({round((w + e) / 2, 7)} {round((s + n) / 2, 7)})"  # 7 places: ~1 cm
        g.add((place, DCAT.centroid, Literal(centre, datatype=wkt)))
        return place

    boxes = [b for b in ([meta.spatial] if meta.spatial else [p.bbox for p in pubs])
             if b is not None]
    if boxes:  # the catalogue covers the union of its datasets' boxes
        g.add((catalog, dct.spatial, location("#spatial", (
            min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes)))))
    scheme = URIRef(EU + "data-theme")
    g.add((scheme, RDF.type, SKOS.ConceptScheme))
    g.add((scheme, dct.title, Literal("Data theme")))
    g.add((catalog, DCAT.themeTaxonomy, scheme))
    themes = sorted({c for p in pubs for c in themes_for([p.label], meta.themes)})
    for code in themes:
        theme = URIRef(f"{EU}data-theme/{code}")
        g.add((theme, RDF.type, SKOS.Concept))
        g.add((theme, SKOS.prefLabel, Literal(THEMES[code], lang="en")))
        g.add((theme, SKOS.inScheme, scheme))
    by_label = {p.label: p for p in pubs}
    for pub in pubs:
        ds = node(f"#dataset-{pub.label}")
        g.add((catalog, DCAT.dataset, ds))
        g.add((ds, RDF.type, DCAT.Dataset))
        g.add((ds, dct.title, Literal(meta.titles.get(pub.label, pub.label))))
        g.add((ds, dct.description, Literal(meta.descriptions.get(pub.label, pub.label))))
        g.add((ds, dct.publisher, publisher))
        g.add((ds, dct.identifier, Literal(f"{meta.name}/{pub.label}")))
        if contact is not None:
            g.add((ds, DCAT.contactPoint, contact))
        for kw in sorted(set(meta.keywords) | {pub.label}):
            g.add((ds, DCAT.keyword, Literal(kw)))
        for code in themes_for([pub.label], meta.themes):
            g.add((ds, DCAT.theme, URIRef(f"{EU}data-theme/{code}")))
        if pub.snapshot.committed_at is not None:
            g.add((ds, dct.modified, stamp(pub.snapshot.committed_at)))
        g.add((ds, URIRef(str(DCAT) + "version"), Literal(str(pub.snapshot.version))))
        start, end = meta.temporal if meta.temporal != (None, None) else pub.span
        if start is not None or end is not None:
            period = node(f"#period-{pub.label}")
            g.add((period, RDF.type, dct.PeriodOfTime))
            if start is not None:
                g.add((period, DCAT.startDate, stamp(start)))
            if end is not None:
                g.add((period, DCAT.endDate, stamp(end)))
            g.add((ds, dct.temporal, period))
        box = meta.spatial or pub.bbox
        if box is not None:
            g.add((ds, dct.spatial, location(f"#spatial-{pub.label}", box)))
        if meta.frequency:
            freq = URIRef(f"{EU}frequency/{meta.frequency}")
            g.add((freq, RDF.type, dct.Frequency))
            g.add((ds, dct.accrualPeriodicity, freq))
        prov = node(f"#provenance-{pub.label}")
        g.add((prov, RDF.type, dct.ProvenanceStatement))
        g.add((prov, RDFS.label, Literal(provenance.get(pub.label, ""))))
        g.add((ds, dct.provenance, prov))
        if meta.series:
            series = URIRef(f"urn:hubctl:export:{meta.name}:{pub.label}")
            g.add((series, RDF.type, URIRef(str(DCAT) + "DatasetSeries")))
            g.add((series, dct.title, Literal(f"{meta.title}: {pub.label} (series)")))
            g.add((series, dct.description, Literal(
                f"Successive incremental exports (--since-last) of {pub.label} from bundle "
                f"{meta.name}.")))
            g.add((ds, URIRef(str(DCAT) + "inSeries"), series))
        if pub.entity is not None:
            std = URIRef(pub.entity.schema.get("$id", f"urn:hubctl:schema:{pub.label}"))
            g.add((std, RDF.type, dct.Standard))
            g.add((ds, dct.conformsTo, std))
            sdm = sdm_schema(pub.entity)
            if sdm and pub.mode == "rows":
                g.add((URIRef(sdm), RDF.type, dct.Standard))
                g.add((ds, dct.conformsTo, URIRef(sdm)))
    for f in files:
        dist = node(f"#distribution-{f.path}")
        g.add((node(f"#dataset-{f.table}"), DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, dct.title, Literal(f"{f.table} ({f.fmt})")))
        g.add((dist, dct.description, Literal(
            f"{f.table} as {f.fmt} ({MEDIA[f.fmt]}), file {f.path} of this bundle.")))
        g.add((dist, DCAT.accessURL, node(f.path)))
        g.add((dist, DCAT.downloadURL, node(f.path)))
        media = URIRef(IANA + MEDIA[f.fmt])
        g.add((media, RDF.type, dct.MediaType))
        g.add((dist, DCAT.mediaType, media))
        fmt = URIRef(f"{EU}file-type/" + {"parquet": "PARQUET", "csv": "CSV",
                                          "geojson": "GEOJSON", "ngsi-ld": "JSON_LD"}[f.fmt])
        g.add((fmt, RDF.type, dct.MediaTypeOrExtent))
        g.add((dist, dct.format, fmt))
        g.add((dist, DCAT.byteSize, Literal(f.bytes, datatype=XSD.decimal)))
        g.add((dist, dct.license, licence))
        ck = node(f"#checksum-{f.path}")
        g.add((ck, RDF.type, spdx.Checksum))
        g.add((ck, spdx.algorithm, spdx.checksumAlgorithm_sha256))
        g.add((ck, spdx.checksumValue, Literal(f.sha256, datatype=XSD.hexBinary)))
        g.add((dist, spdx.checksum, ck))
        pub = by_label[f.table]
        if pub.entity is not None and f.fmt == "ngsi-ld":
            g.add((dist, dct.conformsTo, URIRef(pub.entity.schema.get("$id", ""))))
            sdm = sdm_schema(pub.entity)
            if sdm:
                g.add((dist, dct.conformsTo, URIRef(sdm)))
    return g


def serialise(graph: Any, base: str, fmt: str) -> str:
    """Turtle or JSON-LD text of ``graph`` with IRIs under ``base`` made relative to the
    bundle (when no public base URL is set) so that the bundle reads the same anywhere."""
    if fmt == "turtle":
        text = graph.serialize(format="turtle", base=base)
        if base.startswith("https://bundle.invalid/"):
            text = re.sub(r"^@base <[^>]*> \.\n", "", text, flags=re.M).replace(f"<{base}", "<")
        return str(text)
    doc = json.loads(graph.serialize(format="json-ld"))
    doc = sorted(doc, key=lambda n: n.get("@id", "")) if isinstance(doc, list) else doc
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if base.startswith("https://bundle.invalid/"):
        text = text.replace(base, "")
    return text
