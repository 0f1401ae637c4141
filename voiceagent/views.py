from django.http import JsonResponse
from rest_framework.views import APIView


def healthz(request):
    return JsonResponse({"status": "ok"})


def api_docs(request):
    return JsonResponse({})


class ClientLogApi(APIView):
    pass
