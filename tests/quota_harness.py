"""Teaches moto the Service Quotas it lacks: S3 and SageMaker quotas, and ListServiceQuotas.

moto 5.2 knows only VPC quotas and has no ListServiceQuotas. `QuotaHarness.install` adds the
quotas a test sets (applied values, in the shape AWS returns) and that one API, patched into
moto's own backend and response classes so that boto3 still goes through moto's HTTP layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.models import ServiceQuotasBackend
from moto.servicequotas.responses import ServiceQuotasResponse


@dataclass
class QuotaHarness:
    quotas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # service -> code -> quota

    def set(self, service: str, code: str, name: str, value: float) -> None:
        self.quotas.setdefault(service, {})[code] = {
            "ServiceCode": service,
            "QuotaCode": code,
            "QuotaName": name,
            "Value": float(value),
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": service == "s3",
            "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:{service}/{code}",
        }

    def install(self, monkeypatch) -> "QuotaHarness":
        harness = self
        original_get = ServiceQuotasBackend.get_service_quota

        def get_service_quota(backend, service_code, quota_code):
            quota = harness.quotas.get(service_code, {}).get(quota_code)
            return quota if quota else original_get(backend, service_code, quota_code)

        def list_service_quotas(response):
            params = json.loads(response.body)
            service = harness.quotas.get(params.get("ServiceCode"))
            if service is None:
                raise NoSuchResource
            return json.dumps({"Quotas": list(service.values())})

        monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
        monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", list_service_quotas, raising=False)
        return self
