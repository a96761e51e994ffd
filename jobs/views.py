"""REST views of jobs: CRUD, run now, the runs."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.api import validated
from gateway.errors import GatewayError
from gateway.schema import responses
from jobs import services
from jobs.models import Job, JobRun
from jobs.scheduler import get_scheduler
from jobs.serializers import JobSerializer, JobUpdateSerializer

OBJ = OpenApiTypes.OBJECT
MAX_RUNS = 100


def _jobs_of(user: AbstractBaseUser) -> list[Job]:
    return list(Job.objects.filter(owner=user).select_related("chat__profile")
                .prefetch_related("destinations"))


class JobListView(APIView):
    @extend_schema(responses=responses({200: OBJ}))
    def get(self, request: Request) -> Response:
        return Response({"jobs": [job.to_dict() for job in _jobs_of(request.user)]})

    @extend_schema(request=JobSerializer, responses=responses({201: OBJ}, 403, 409, body=True))
    def post(self, request: Request) -> Response:
        job = services.create(request.user, validated(JobSerializer, request))
        return Response(job.to_dict(), status=status.HTTP_201_CREATED)


class JobDetailView(APIView):
    @extend_schema(responses=responses({200: OBJ}, 404))
    def get(self, request: Request, job_id: str) -> Response:
        return Response(services.get_job_for(request.user, job_id).to_dict())

    @extend_schema(request=JobUpdateSerializer,
                   responses=responses({200: OBJ}, 403, 404, 409, body=True))
    def patch(self, request: Request, job_id: str) -> Response:
        job = services.get_job_for(request.user, job_id)
        body = validated(JobUpdateSerializer, request, partial=True)
        return Response(services.update(job, request.user, body).to_dict())

    @extend_schema(responses=responses({200: OBJ}, 404))
    def delete(self, request: Request, job_id: str) -> Response:
        services.delete(services.get_job_for(request.user, job_id))
        return Response({"deleted": True})


class JobRunNowView(APIView):
    @extend_schema(request=None, responses=responses({202: OBJ}, 404))
    def post(self, request: Request, job_id: str) -> Response:
        """Run the job once now, in this server process, outside its schedule."""
        job = services.get_job_for(request.user, job_id)
        run_id = async_to_sync(get_scheduler().run_now)(job)
        run = JobRun.objects.select_related("job").get(pk=run_id)
        return Response(run.to_dict(), status=status.HTTP_202_ACCEPTED)


class JobRunListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("limit", int)],
                   responses=responses({200: OBJ}, 400, 404))
    def get(self, request: Request, job_id: str) -> Response:
        """The job's runs, newest first."""
        job = services.get_job_for(request.user, job_id)
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
            raise GatewayError("invalid_request", f"limit must be between 1 and {MAX_RUNS}.",
                               400, {"limit": f"Between 1 and {MAX_RUNS}."})
        rows = JobRun.objects.filter(job=job).select_related("job")[:int(raw)]
        return Response({"runs": [run.to_dict() for run in rows]})
